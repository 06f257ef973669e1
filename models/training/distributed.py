"""Data-parallel training across processes, on MPI (mpi4py): ``mpirun -n K python cli.py train ...``.

Every rank holds the same decoder and optimiser. At step t the global batch is the one a single
process would draw with batch K * B (``batch_indices(t, K B)``); rank r trains on its slice r of B
samples. After backward, the gradients are averaged over the ranks (one all-reduce of one flat
buffer), so every rank takes the same Adam step, and K ranks with batch B compute what one
process with batch K B computes (the loss divides by the batch: the mean of the K per-rank
gradients is the gradient of the whole batch's loss). Rank 0 alone builds the feature caches,
fits the baselines, validates, logs, draws and writes checkpoints; the others wait for the caches,
then train. A stop (Ctrl-C, SIGTERM) is agreed on by all ranks at the next step.

Without ``mpirun`` (or with one process), :func:`current` is a single-process group whose every
operation is free; mpi4py is then never imported (it is the optional ``cluster`` extra).
On the CPU the all-reduce goes through MPI (in float64); on GPUs (``--device gpu``) through NCCL,
CuPy's bindings (:class:`NCCLGroup`), on the device, with MPI carrying only NCCL's setup and the
stop flag. Rank r uses GPU (local rank mod the GPUs of its machine).
"""
import os

import numpy as np

import nn
from nn.errors import SetupError

SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS")
LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")


def _parts(flat, arrays):
    """Each array of ``arrays`` with its part of ``flat``, their concatenation, in its shape."""
    offset = 0
    for a in arrays:
        yield a, flat[offset:offset + a.size].reshape(a.shape)
        offset += a.size


class SingleProcess:
    """The group of one: rank 0 of 1."""
    rank, size = 0, 1

    @property
    def is_root(self):
        return self.rank == 0

    def barrier(self):
        pass

    def average(self, arrays):
        """Average each array over the ranks, in place."""

    def any(self, flag):
        """Whether ``flag`` is true on any rank."""
        return bool(flag)


class MPIGroup(SingleProcess):
    """The processes started by mpirun (COMM_WORLD)."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise SetupError(f"this process was started by mpirun, but mpi4py cannot be imported ({exc}); "
                               "pip install 'featinv[cluster]' (and an MPI library: apt-get install "
                               "openmpi-bin)") from None
        self.mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def barrier(self):
        self.comm.Barrier()

    def average(self, arrays):
        arrays = [a for a in arrays if a is not None]
        if not arrays:
            return
        flat = np.concatenate([nn.to_numpy(a).astype(np.float64, copy=False).ravel() for a in arrays])
        total = np.empty_like(flat)
        self.comm.Allreduce(flat, total, op=self.mpi.SUM)
        total /= self.size
        for a, part in _parts(total, arrays):
            a[...] = nn.to_device(part.astype(a.dtype), nn.device_of(a))

    def any(self, flag):
        return bool(self.comm.allreduce(int(bool(flag)), op=self.mpi.MAX))


class NCCLGroup(MPIGroup):
    """The processes started by mpirun, one GPU each: gradients are summed by NCCL on the device
    (one all-reduce of one flat float32 buffer), never copied to the host."""

    def __init__(self):
        super().__init__()
        import cupy
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            raise SetupError(f"--device gpu under mpirun needs NCCL in CuPy ({exc}); install a CuPy with NCCL "
                               "(pip install cupy-cuda12x and nvidia-nccl-cu12), or run on --device cpu") from None
        local_rank = next((int(os.environ[v]) for v in LOCAL_RANK_VARIABLES if os.environ.get(v, "").isdigit()),
                          self.rank)
        cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        unique_id = nccl.get_unique_id() if self.rank == 0 else None
        self.cupy, self.nccl = cupy, nccl
        self.communicator = nccl.NcclCommunicator(self.size, self.comm.bcast(unique_id, root=0), self.rank)

    def average(self, arrays):
        arrays = [a for a in arrays if a is not None]
        if not arrays or all(isinstance(a, np.ndarray) for a in arrays):  # host values (the logged losses)
            return super().average(arrays)
        cupy = self.cupy
        flat = cupy.concatenate([a.astype(cupy.float32, copy=False).ravel() for a in arrays])
        self.communicator.allReduce(flat.data.ptr, flat.data.ptr, flat.size, self.nccl.NCCL_FLOAT32,
                                    self.nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)
        flat /= self.size
        for a, part in _parts(flat, arrays):
            a[...] = part.astype(a.dtype, copy=False)


def current(device="cpu"):
    """The group this process belongs to: MPI's world when started by mpirun with more than one
    process (with NCCL for the gradients on ``device`` "gpu"), else a single process."""
    size = next((int(os.environ[v]) for v in SIZE_VARIABLES if os.environ.get(v, "").isdigit()), 1)
    if size == 1:
        return SingleProcess()
    return NCCLGroup() if device == "gpu" else MPIGroup()
