"""ConvPlan: every layout choice of the convolution engine, in one frozen record per device.

A plan decides *how* the work is laid out (bands or one gather, where a strided copy of the weight
pays), never *what* is computed: the tests force every layout with :func:`planned` and compare the
results with each other and with nn/functional/conv_reference.py.
"""
import contextlib
import dataclasses
import threading

@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """How the fast convolutions lay out their work; the results do not depend on it (the tests
    build plans that force every layout and compare them with conv_reference.py).

    ``gather``: build im2col, and its adjoint col2im, by gathering with an index table (a few
    kernel launches per layer whatever the kernel size: the GPU's way; :func:`.gather.im2col_by_gather`)
    instead of band by band with kH*kW block copies through the phase layout (the CPU's way, which
    keeps each band in the processor's cache while its GEMMs read it).
    ``band_bytes``: the size of one band's im2col block, and ``min_band_columns``: the fewest GEMM
    columns (N * rows * OW) a band gets, since thinner bands cost more in per-call overhead than the
    cache saves.
    ``phase_min_positions_per_channel`` and ``weight_grad_transpose_positions``: the thresholds
    at which a strided copy of the whole weight pays for the GEMM or scatter-add work it saves
    (:func:`.gemm._by_phases`, :func:`.gemm._weight_grad_transposed`).
    ``batch_last_max_width``: col2im keeps the batch axis last for gy rows narrower than this, where
    its scatter-adds would otherwise move runs too short to pay for their loop
    (:func:`.gemm._transposed_phases_by_col2im`).
    ``sparse_inputs``: compute :func:`~nn.functional.sparse_conv.sparse_input_conv2d` from the
    input's non-zero pixels (else as the dense conv2d: the GPU's way, where finding them would
    make the device wait for the host).

    The defaults per device (:meth:`for_device`) were measured with bench/bench_nn.py on the
    decoders' layer shapes.
    """
    gather: bool = False
    band_bytes: int = 4 << 20
    min_band_columns: int = 512
    phase_min_positions_per_channel: int = 4
    weight_grad_transpose_positions: int = 1024
    batch_last_max_width: int = 64
    sparse_inputs: bool = True

    @staticmethod
    def for_device(device):
        """The plan used on ``device`` ("cpu" or "gpu") unless :func:`planned` says otherwise."""
        override = getattr(_PLAN, "plan", None)
        if override is not None:
            return override
        return GPU_PLAN if device == "gpu" else CPU_PLAN


CPU_PLAN = ConvPlan()
GPU_PLAN = ConvPlan(gather=True, band_bytes=1 << 62, sparse_inputs=False)
_PLAN = threading.local()


@contextlib.contextmanager
def planned(plan):
    """Within this block (this thread), every fast convolution follows ``plan`` on every device."""
    previous = getattr(_PLAN, "plan", None)
    _PLAN.plan = plan
    try:
        yield plan
    finally:
        _PLAN.plan = previous
