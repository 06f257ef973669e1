"""2-D convolution and transposed convolution (NCHW), built from three shared primitives.

Notation: x (N, C, H, W); weight w (C_out, C/groups, kH, kW) as PyTorch and Caffe store it;
stride (sH, sW); padding (pH, pW); output (N, C_out, OH, OW) with OH = (H + 2 pH - kH) // sH + 1.

Convolution (cross-correlation, as every framework computes it)::

    y[n, o, i, j] = b[o] + sum_{c in group(o), u, v} w[o, c, u, v] * x_pad[n, c, i sH + u, j sW + v]

It is computed as GEMMs over an im2col buffer ``col`` of shape (C, kH, kW, N, OH, OW) (columns
ordered so that a group's rows and the batch's columns are both contiguous):
``col[c, u, v, n, i, j] = x_pad[n, c, i sH + u, j sW + v]``.

*Phase layout.* The padded image is first copied once into a phase layout (sH, sW, C, N, QH, QW),
where row q of phase a is padded row q sH + a. Kernel offset (u, v) then reads the contiguous block
of phase (u mod sH, v mod sW) starting at (u // sH, v // sW), so filling ``col`` takes kH*kW block
copies instead of strided gathers; :func:`from_phases` interleaves a phase layout back into
(N, C, H, W).

*Row bands.* ``col`` is kH*kW times the size of the image, so it is never built whole: the output
rows are cut into bands whose im2col block fits ``ConvPlan.band_bytes`` (a few MiB, so that a band
stays in the processor's cache; on the GPU one band covers everything). Each band's block is filled, used by its GEMMs
while it is still in cache, and overwritten by the next band. The GEMMs are the same as on one
whole buffer, cut along their long N*OH*OW axis. (Only a convolution whose whole im2col is one
band keeps it for its weight gradient; larger ones rebuild the bands in backward.)

The three primitives (per band, each one GEMM batched over groups, all through :func:`_gemm`):

* :func:`conv_forward_data`:    y  = W @ col(x)             (G, Co/G, C/G kH kW) @ (G, C/G kH kW, N b OW)
* :func:`conv_backward_data`:   gx = the adjoint of x -> y, applied to gy. When the kernel is a
  multiple of the stride (every stride-1 convolution, and the 4x4 stride-2 upconvolutions of the
  HOG/SIFT/LBP decoders) it is itself a convolution: each output phase is a stride-1 convolution
  of gy with every s-th kernel tap, reversed, so one GEMM over an im2col of gy yields the phase
  layout directly (see :func:`_transposed_by_phases`). Otherwise (the AlexNet decoders' 5x5
  stride-2 upconvolutions, and layers whose weight is large for their image, where rearranging
  the weight would cost more than the adds it saves: :func:`_by_phases`) it is col2im(W^T @ gy):
  scatter-adds into a zeroed phase layout.
* :func:`conv_backward_weight`: gW = sum over bands of gy @ col(x)^T (computed as (col @ gy^T)^T
  when that is faster: :func:`_weight_grad_transposed`)

The transposed convolution is by definition the adjoint of the convolution: with weight
(C_in, C_out/groups, kH, kW), ``conv_transpose2d(x, w) = conv_backward_data(x, w)``; its input
gradient is ``conv_forward_data(gy, w)`` and its weight gradient ``conv_backward_weight(gy, x)``,
computed together from one im2col of gy. So ``<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>``
holds by construction (and is tested). Its output size is OH = (H - 1) sH - 2 pH + kH + output_padding.
"""
import contextlib
import dataclasses
import functools
import threading

import numpy as np

from ..backend import device_of, get_array_module, to_device
from ..function import Function
from .conv_reference import Conv2dReference, ConvTranspose2dReference, conv_output_size
from .validation import check_float, check_rank, pair

@dataclasses.dataclass(frozen=True)
class ConvPlan:
    """How the fast convolutions lay out their work; the results do not depend on it (the tests
    build plans that force every layout and compare them with conv_reference.py).

    ``gather``: build im2col, and its adjoint col2im, by gathering with an index table (a few
    kernel launches per layer whatever the kernel size: the GPU's way; :func:`im2col_by_gather`)
    instead of band by band with kH*kW block copies through the phase layout (the CPU's way, which
    keeps each band in the processor's cache while its GEMMs read it).
    ``band_bytes``: the size of one band's im2col block, and ``min_band_columns``: the fewest GEMM
    columns (N * rows * OW) a band gets, since thinner bands cost more in per-call overhead than the
    cache saves.
    ``phase_min_positions_per_channel`` and ``weight_grad_transpose_positions``: the thresholds
    at which a strided copy of the whole weight pays for the GEMM or scatter-add work it saves
    (:func:`_by_phases`, :func:`_weight_grad_transposed`).
    ``batch_last_max_width``: col2im keeps the batch axis last for gy rows narrower than this, where
    its scatter-adds would otherwise move runs too short to pay for their loop
    (:func:`_transposed_phases_by_col2im`).
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


def conv_transpose_output_size(size, kernel, stride, padding, output_padding):
    """(size - 1) stride - 2 padding + kernel + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


# --- phase layout -----------------------------------------------------------------------------

def _phase_extent(size, padding, out, kernel, stride):
    """Rows (or columns) per phase: enough for every window (out + (kernel - 1) // stride) and for
    the padded image's first padding + size rows."""
    return max(out + (kernel - 1) // stride, -(-(size + padding) // stride))


def _extent(image_size, padding, out_size, kernel, stride):
    return tuple(_phase_extent(*args) for args in zip(image_size, padding, out_size, kernel, stride))


def _phase_range(phase, padding, stride, size, extent):
    """For one phase along one axis: (first phase index q0, the image row it holds, how many rows)."""
    q0 = max(0, -(-(padding - phase) // stride))
    start = q0 * stride + phase - padding
    return q0, start, max(0, min(extent - q0, -(-(size - start) // stride)))


def to_phases(x, padding, stride, extent):
    """x (N, C, H, W) -> phases (sH, sW, C, N, QH, QW) of the zero-padded image, split by stride
    phase: ``phases[a, b, c, n, q, r] = x_pad[n, c, q sH + a, r sW + b]``. A negative padding
    crops instead (the transposed convolution's phases start inside gy).

    Kernel offset (u, v) then reads the contiguous block ``phases[u % sH, v % sW, :, :,
    u // sH : u // sH + OH, v // sW : v // sW + OW]`` instead of a strided one.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (ph, pw), (sh, sw), (qh, qw) = padding, stride, extent
    phases = xp.zeros((sh, sw, c, n, qh, qw), dtype=x.dtype)
    buffer = _column_buffer(x.shape, sw, x)
    for b in range(sw):
        r0, col, cols = _phase_range(b, pw, sw, w, qw)
        if cols == 0:  # this column phase holds padding only
            continue
        if buffer is None:
            columns = x[..., col:col + cols]
        else:
            columns = buffer[..., :cols]
            columns[...] = x[..., col:col + sw * (cols - 1) + 1:sw]
        for a in range(sh):
            q0, row, rows = _phase_range(a, ph, sh, h, qh)
            if rows:
                phases[a, b, :, :, q0:q0 + rows, r0:r0 + cols] = \
                    columns.transpose(1, 0, 2, 3)[:, :, row:row + sh * (rows - 1) + 1:sh]
    return phases


def from_phases(phases, padding, image_size, bias=None, out=None):
    """The adjoint of :func:`to_phases`: phases (sH, sW, C, N, QH, QW) -> the image (N, C, H, W)
    without its padding, written into ``out`` (a new contiguous array if None); ``bias`` (C,) is
    added on the way."""
    xp = get_array_module(phases)
    sh, sw, c, n, qh, qw = phases.shape
    (ph, pw), (h, w) = padding, image_size
    image = xp.empty((n, c, h, w), dtype=phases.dtype) if out is None else out
    buffer = _column_buffer(image.shape, sw, image)
    for b in range(sw):
        r0, col, cols = _phase_range(b, pw, sw, w, qw)
        if cols == 0:
            continue
        columns = image[..., col:col + cols] if buffer is None else buffer[..., :cols]
        for a in range(sh):
            q0, row, rows = _phase_range(a, ph, sh, h, qh)
            if rows == 0:
                continue
            source = phases[a, b, :, :, q0:q0 + rows, r0:r0 + cols].transpose(1, 0, 2, 3)
            target = columns[:, :, row:row + sh * (rows - 1) + 1:sh]
            if bias is None:
                target[...] = source
            else:
                xp.add(source, bias.reshape(1, -1, 1, 1), out=target)
        if buffer is not None:
            image[..., col:col + sw * (cols - 1) + 1:sw] = columns
    return image


def _column_buffer(shape, stride, like):
    """(N, C, H, ceil(W / sW)) scratch for one column phase, or None when sW is 1.

    The strided column pick (every sW-th column) and the row pick are done as two copies through
    this buffer: alone, the column pick runs as one long loop over all rows; combined with the row
    pick, NumPy runs it row by row, several times slower.
    """
    if stride == 1:
        return None
    return get_array_module(like).empty(tuple(shape[:3]) + (-(-shape[3] // stride),), dtype=like.dtype)


def _offset_block(u, v, stride, first_row, rows, width):
    """Index, in the phase layout, of the (C, N, rows, width) block that kernel offset (u, v) reads
    for output rows first_row .. first_row + rows - 1."""
    sh, sw = stride
    top, left = first_row + u // sh, v // sw
    return u % sh, v % sw, slice(None), slice(None), slice(top, top + rows), slice(left, left + width)


# --- im2col and col2im, by row band -----------------------------------------------------------

def _fill_col(col, phases, stride, first_row):
    """col (C, kH, kW, N, b, OW) <- the windows of output rows first_row .. first_row + b - 1."""
    _, kh, kw, _, rows, width = col.shape
    for u in range(kh):
        for v in range(kw):
            col[:, u, v] = phases[_offset_block(u, v, stride, first_row, rows, width)]


def _add_col(phases, col, stride, first_row, batch_last=False):
    """The adjoint of :func:`_fill_col`: phases (sH, sW, C, N, QH, QW) += each offset's (C, N, b, OW)
    slice of col (C, kH, kW, N, b, OW). With ``batch_last`` the batch axis is last in both, phases
    (sH, sW, C, QH, QW, N) and col (C, kH, kW, b, OW, N): a phase row of every image is one run."""
    kh, kw = col.shape[1:3]
    rows, width = col.shape[3:5] if batch_last else col.shape[4:6]
    for u in range(kh):
        for v in range(kw):
            block = _offset_block(u, v, stride, first_row, rows, width)
            phases[block[:3] + block[4:] if batch_last else block] += col[:, u, v]


def im2col(x, kernel, stride, padding, out_size):
    """x (N, C, H, W) -> the whole col (C, kH, kW, N, OH, OW) (for tests and profiling; the ops
    use :func:`im2col_bands`)."""
    xp = get_array_module(x)
    phases = to_phases(x, padding, stride, _extent(x.shape[2:], padding, out_size, kernel, stride))
    col = xp.empty(x.shape[1:2] + tuple(kernel) + x.shape[:1] + tuple(out_size), dtype=x.dtype)
    _fill_col(col, phases, stride, 0)
    return col


def row_bands(out_rows, bytes_per_row, columns_per_row, plan):
    """(first, stop) output-row ranges whose blocks of ``bytes_per_row`` each fit the plan's
    band_bytes, but with at least its min_band_columns GEMM columns (``columns_per_row`` each)."""
    step = max(plan.band_bytes // max(1, bytes_per_row), -(-plan.min_band_columns // max(1, columns_per_row)), 1)
    return [(first, min(out_rows, first + step)) for first in range(0, out_rows, step)]


def band_rows(first, stop, stride, padding, size):
    """The image rows that phase rows first .. stop - 1 hold: (r0, r1, top), image rows
    r0 .. r1 - 1, with ``top`` the padding that places them (phase row ``first`` of phase a holds
    image row a - top)."""
    start = first * stride - padding
    r0 = max(0, start)
    return r0, max(r0, min(size, stop * stride - padding)), r0 - start


def im2col_bands(x, kernel, stride, padding, out_size, plan):
    """Yields (first, stop, col) for each row band: col (C, kH, kW, N, stop - first, OW), contiguous,
    holds the windows of output rows first .. stop - 1. The block's memory is reused by the next
    band: use each one before asking for the next. With ``plan.gather``, one band built by
    :func:`im2col_by_gather`."""
    if plan.gather:
        yield 0, out_size[0], im2col_by_gather(x, kernel, stride, padding, out_size)
        return
    xp = get_array_module(x)
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_size
    phases = to_phases(x, padding, stride, _extent(x.shape[2:], padding, out_size, kernel, stride))
    row_size = c * kh * kw * n * ow
    bands = row_bands(oh, row_size * x.itemsize, n * ow, plan)
    memory = xp.empty(row_size * (bands[0][1] - bands[0][0]), dtype=x.dtype)
    for first, stop in bands:
        col = memory[:row_size * (stop - first)].reshape(c, kh, kw, n, stop - first, ow)
        _fill_col(col, phases, stride, first)
        yield first, stop, col


# --- im2col and col2im by index (ConvPlan.gather) ------------------------------------------------------

def _canvas_size(kernel, stride, out_size):
    """Rows (columns) that the windows cover: (O - 1) s + k."""
    return tuple((o - 1) * st + k for o, st, k in zip(out_size, stride, kernel))


def _canvas(x, padding, canvas):
    """x (N, C, H, W) -> (C, N, HC, WC), channel-major: canvas row r holds image row r - pH (zero
    where there is none; a negative padding crops)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((c, n) + tuple(canvas), dtype=x.dtype)
    (ph, pw), (hc, wc) = padding, canvas
    r0, r1, c0, c1 = max(0, ph), min(hc, h + ph), max(0, pw), min(wc, w + pw)
    if r0 < r1 and c0 < c1:
        out[:, :, r0:r1, c0:c1] = x[:, :, r0 - ph:r1 - ph, c0 - pw:c1 - pw].transpose(1, 0, 2, 3)
    return out


def _taps(n, canvas, kernel, stride, out_size):
    """Host arrays broadcasting to (kH, kW, N, OH, OW): the canvas row and column each window tap
    reads (i sH + u, j sW + v), and the image index n."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_size
    u, v, b, i, j = np.ix_(range(kh), range(kw), range(n), range(oh), range(ow))
    return i * sh + u, j * sw + v, b


@functools.lru_cache(maxsize=128)
def _window_index(device, n, canvas, kernel, stride, out_size):
    """(kH kW N OH OW,) positions in a (N, HC, WC) canvas of every window tap, on ``device``."""
    rows, cols, b = _taps(n, canvas, kernel, stride, out_size)
    return to_device((b * (canvas[0] * canvas[1]) + rows * canvas[1] + cols).ravel(), device)


def im2col_by_gather(x, kernel, stride, padding, out_size):
    """x (N, C, H, W) -> col (C, kH, kW, N, OH, OW) as one gather from the channel-major canvas:
    ``col[c, u, v, n, i, j] = canvas[c, n, i sH + u, j sW + v]`` (3 kernel launches)."""
    n, c = x.shape[:2]
    kernel, stride, out_size = tuple(kernel), tuple(stride), tuple(out_size)
    canvas = _canvas_size(kernel, stride, out_size)
    index = _window_index(device_of(x), n, canvas, kernel, stride, out_size)
    col = _canvas(x, padding, canvas).reshape(c, -1).take(index, axis=1)
    return col.reshape((c,) + kernel + (n,) + out_size)


@functools.lru_cache(maxsize=128)
def _pixel_taps(device, n, image_size, padding, kernel, stride, out_size):
    """(T, N H W) table, on ``device``: for each image pixel, the positions in col's flattened
    (kH kW N OH OW) axis of the window taps that read it, T = the most any pixel has; a pixel with
    fewer points its spare entries one past the end (at an appended zero)."""
    (h, w), (ph, pw) = image_size, padding
    rows, cols, b = _taps(n, _canvas_size(kernel, stride, out_size), kernel, stride, out_size)
    y, x = np.broadcast_arrays(rows - ph, cols - pw, b)[:2]
    b = np.broadcast_to(b, y.shape)
    inside = ((y >= 0) & (y < h) & (x >= 0) & (x < w)).ravel()
    pixel = ((b * h + y) * w + x).ravel()[inside]
    source = np.flatnonzero(inside)
    order = np.argsort(pixel, kind="stable")
    pixel, source = pixel[order], source[order]
    counts = np.bincount(pixel, minlength=n * h * w)
    rank = np.arange(pixel.size) - (np.cumsum(counts) - counts)[pixel]
    table = np.full((max(1, counts.max()), n * h * w), y.size, dtype=np.int64)
    table[rank, pixel] = source
    return to_device(table, device)


def col2im_by_gather(gcol, image_size, stride, padding, bias=None):
    """The adjoint of :func:`im2col_by_gather`: gcol (C, kH, kW, N, OH, OW) -> gx (N, C, H, W), each
    pixel the sum of the taps that read it, as one gather and one sum (+ bias (C,))."""
    xp = get_array_module(gcol)
    c, kh, kw, n, oh, ow = gcol.shape
    table = _pixel_taps(device_of(gcol), n, tuple(image_size), tuple(padding), (kh, kw), tuple(stride), (oh, ow))
    flat = xp.concatenate([gcol.reshape(c, -1), xp.zeros((c, 1), dtype=gcol.dtype)], axis=1)
    summed = flat.take(table, axis=1).sum(axis=1).reshape((c, n) + tuple(image_size)).transpose(1, 0, 2, 3)
    if bias is None:
        return xp.ascontiguousarray(summed)
    return xp.add(summed, bias.reshape(1, -1, 1, 1), out=xp.empty(summed.shape, dtype=summed.dtype))


# --- GEMM operands --------------------------------------------------------------------------

def _gemm(a, b):
    """a @ b, batched over the leading group axis: BLAS (cuBLAS on the GPU) through matmul. Every
    multiply-add of the convolutions goes through here."""
    return a @ b


def _grouped_weight(w, groups):
    """w (C_out, C/G, kH, kW) -> (G, C_out/G, C/G kH kW): one GEMM operand per group."""
    return w.reshape(groups, w.shape[0] // groups, -1)


def _flat(col, groups):
    """col (C, kH, kW, N, b, OW) -> (G, C/G kH kW, N b OW), a view."""
    c, kh, kw, n, rows, width = col.shape
    return col.reshape(groups, c // groups * kh * kw, n * rows * width)


def _grouped_rows(y, first, stop, groups, batch_last=False):
    """Rows first .. stop - 1 of y (N, C, H, W) as a contiguous (G, C/G, N b W) GEMM operand, or
    with ``batch_last`` (G, C/G, b W N)."""
    xp = get_array_module(y)
    n, c = y.shape[:2]
    order = (1, 2, 3, 0) if batch_last else (1, 0, 2, 3)
    return xp.ascontiguousarray(y[:, :, first:stop].transpose(order)).reshape(groups, c // groups, -1)


def _store_rows(y, first, stop, y_grouped, bias=None):
    """y[:, :, first:stop] <- y_grouped (G, C/G, N b W) (+ bias (C,))."""
    xp = get_array_module(y)
    n, c, _, w = y.shape
    source = y_grouped.reshape(c, n, stop - first, w).transpose(1, 0, 2, 3)
    if bias is None:
        y[:, :, first:stop] = source
    else:
        xp.add(source, bias.reshape(1, -1, 1, 1), out=y[:, :, first:stop])


def _weight_grad_transposed(positions, plan):
    """Whether to accumulate the weight gradient transposed, as col @ gy^T (G, C/G kH kW, C_out/G),
    for a layer with ``positions`` = N OH OW output positions.

    OpenBLAS runs col @ gy^T faster than gy @ col^T for the decoders' usual shapes (the long
    N OH OW axis contracted), but the result must then be transposed once into the weight's
    layout, a strided copy of every weight entry. Below plan.weight_grad_transpose_positions positions
    (small images, large weights, e.g. 1024 -> 512 channels at 4x4) that copy costs more than the
    GEMM saves, and gy @ col^T, which yields the weight's layout directly, is faster."""
    return positions >= plan.weight_grad_transpose_positions


def _weight_grad_band(col, gy, first, stop, groups, transposed):
    """One band's share of the weight gradient: col @ gy^T (G, C/G kH kW, C_out/G) if
    ``transposed``, else gy @ col^T (G, C_out/G, C/G kH kW)."""
    rows = _grouped_rows(gy, first, stop, groups)
    if transposed:
        return _gemm(_flat(col, groups), rows.transpose(0, 2, 1))
    return _gemm(rows, _flat(col, groups).transpose(0, 2, 1))


def _weight_from_grad(gw, w_shape, transposed):
    """The accumulated weight gradient in the weight's layout (C_out, C/G, kH, kW), contiguous: a
    strided view would make every optimiser pass over the gradient a strided read."""
    if transposed:
        gw = get_array_module(gw).ascontiguousarray(gw.transpose(0, 2, 1))
    return gw.reshape(w_shape)


# --- the three primitives ---------------------------------------------------------------------

def conv_forward_data(x, w, stride, padding, groups, plan, bias=None):
    """(y, col): y (N, C_out, OH, OW) = conv(x, w) (+ bias), and the im2col block of x if it was
    built whole (one band: the weight gradient can reuse it), else None."""
    for y, _, _, col in _forward_bands(x, w, stride, padding, groups, plan, bias):
        pass
    return y, (col if col.shape[4] == y.shape[2] else None)


def conv_forward_data_and_weight_grad(x, w, g, stride, padding, groups, plan):
    """(y, gw): y = conv(x, w), and from the same im2col bands the weight gradient of
    ``conv_transpose2d(g, w)`` for the upstream gradient x (the transposed convolution's backward)."""
    transposed = _weight_grad_transposed(g.shape[0] * g.shape[2] * g.shape[3], plan)
    gw = 0
    for y, first, stop, col in _forward_bands(x, w, stride, padding, groups, plan):
        gw = gw + _weight_grad_band(col, g, first, stop, groups, transposed)
    return y, _weight_from_grad(gw, w.shape, transposed)


def _forward_bands(x, w, stride, padding, groups, plan, bias=None):
    """y = conv(x, w) (+ bias), band by band: yields (y, first, stop, col) once output rows
    first .. stop - 1 are stored, while their im2col block ``col`` is still in memory."""
    xp = get_array_module(x)
    kernel = w.shape[2:]
    out_size = tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(x.shape[2:], kernel, stride, padding))
    y = xp.empty((x.shape[0], w.shape[0]) + out_size, dtype=x.dtype)
    weight = _grouped_weight(w, groups)
    for first, stop, col in im2col_bands(x, kernel, stride, padding, out_size, plan):
        _store_rows(y, first, stop, _gemm(weight, _flat(col, groups)), bias)
        yield y, first, stop, col


def conv_backward_data(gy, w, image_size, stride, padding, groups, plan, bias=None):
    """gx (N, C, H, W): the adjoint of x -> conv(x, w) applied to gy (N, C_out, OH, OW), for input size
    ``image_size`` (+ bias (C,)). By stride phases where :func:`_by_phases` says they apply and pay
    (the kernel a multiple of the stride, and enough output positions for the weight), else by
    col2im (with ``plan.gather``: one GEMM and one gather)."""
    if plan.gather:
        weight_t = _grouped_weight(w, groups).transpose(0, 2, 1)
        gcol = _gemm(weight_t, _grouped_rows(gy, 0, gy.shape[2], groups))
        c = w.shape[1] * groups
        return col2im_by_gather(gcol.reshape((c,) + tuple(w.shape[2:]) + (gy.shape[0],) + tuple(gy.shape[2:])),
                                image_size, stride, padding, bias)
    if _by_phases(gy.shape, w.shape, stride, groups, plan):
        return _transposed_by_phases(gy, w, image_size, stride, padding, groups, plan, bias)
    phases = _transposed_phases_by_col2im(gy, w, image_size, stride, padding, groups, plan)
    return from_phases(phases, padding, image_size, bias)


def _by_phases(gy_shape, w_shape, stride, groups, plan):
    """Whether :func:`_transposed_by_phases` applies and pays: the kernel must be a multiple of the
    stride, and its one strided rearrangement of the whole weight must cost less than the
    scatter-adds it saves, whose volume grows with the N OH OW positions of gy: it does from
    plan.phase_min_positions_per_channel positions per input channel of the GEMM (C_out / G) on."""
    n, c_out, oh, ow = gy_shape
    return (all(k % s == 0 for k, s in zip(w_shape[2:], stride))
            and n * oh * ow >= plan.phase_min_positions_per_channel * (c_out // groups))


def _transposed_by_phases(gy, w, image_size, stride, padding, groups, plan, bias):
    """The adjoint as direct convolutions of gy, one per stride phase of the output.

    With T = k / s taps per axis, padded row q sH + a receives gy rows q - T + 1 .. q through kernel
    rows a + s (T - 1), .., a + s, a: phase a is a stride-1 convolution of gy (padded by T - 1)
    with those kernel rows in reverse order. Only the phase rows that land inside the image,
    p // s .. ceil((H + p) / s) - 1, are computed. All sH sW phases share one im2col of gy and
    are computed by one GEMM per band, (G, sH sW C/G, C_out/G T T) @ (G, C_out/G T T, N b QW),
    whose output is already a band of the phase layout (no scatter-add, no zeroed buffer); it is
    interleaved into its image rows while still in cache.
    """
    xp = get_array_module(gy)
    n, c_out = gy.shape[:2]
    (kh, kw), (sh, sw) = w.shape[2:], stride
    c, taps = w.shape[1] * groups, (kh // sh, kw // sw)
    first = tuple(p // s for p, s in zip(padding, stride))  # first phase row (column) in the image
    extent = tuple(-(-(size + p) // s) - q for size, p, s, q in zip(image_size, padding, stride, first))
    # phase_weight[g, a, b, c, o, t, t'] = w[g o, c, s_h (T_h - 1 - t) + a, s_w (T_w - 1 - t') + b]
    w6 = w.reshape(groups, c_out // groups, c // groups, taps[0], sh, taps[1], sw)[:, :, :, ::-1, :, ::-1, :]
    phase_weight = w6.transpose(0, 4, 6, 2, 1, 3, 5).reshape(groups, sh * sw * (c // groups), -1)
    image = xp.empty((n, c) + tuple(image_size), dtype=gy.dtype)
    gy_padding = tuple(t - 1 - q for t, q in zip(taps, first))  # negative: windows start inside gy
    offset = tuple(p - q * s for p, q, s in zip(padding, first, stride))  # padding left above row `first`
    for top, stop, col in im2col_bands(gy, taps, (1, 1), gy_padding, extent, plan):
        out = _gemm(phase_weight, _flat(col, groups))  # (G, sH sW C/G, N b QW)
        out = out.reshape(groups, sh, sw, c // groups, n, stop - top, extent[1])
        phases = out.transpose(1, 2, 0, 3, 4, 5, 6).reshape(sh, sw, c, n, stop - top, extent[1])
        r0, r1, band_top = band_rows(top, stop, sh, offset[0], image_size[0])
        from_phases(phases, (band_top, offset[1]), (r1 - r0, image_size[1]), bias, out=image[:, :, r0:r1])
    return image


def _transposed_phases_by_col2im(gy, w, image_size, stride, padding, groups, plan):
    """The same phase layout for any kernel and stride: col2im(W^T gy), band by band.

    Each kernel offset's scatter-add moves runs of OW values (one row of one image); where gy's
    rows are narrower than plan.batch_last_max_width the batch axis is kept last instead: the GEMM
    takes gy's rows as (C_out, b, OW, N), the adds go into a (sH, sW, C, QH, QW, N) buffer in runs
    of OW N values, and the buffer is turned into the phase layout once at the end."""
    xp = get_array_module(gy)
    n, _, oh, ow = gy.shape
    c, (kh, kw) = w.shape[1] * groups, w.shape[2:]
    extent = _extent(image_size, padding, (oh, ow), (kh, kw), stride)
    batch_last = ow < plan.batch_last_max_width
    phases = xp.zeros(tuple(stride) + ((c,) + extent + (n,) if batch_last else (c, n) + extent), dtype=gy.dtype)
    weight_t = _grouped_weight(w, groups).transpose(0, 2, 1)
    for first, stop in row_bands(oh, c * kh * kw * n * ow * gy.itemsize, n * ow, plan):
        gcol = _gemm(weight_t, _grouped_rows(gy, first, stop, groups, batch_last))
        band = (stop - first, ow, n) if batch_last else (n, stop - first, ow)
        _add_col(phases, gcol.reshape((c, kh, kw) + band), stride, first, batch_last)
    return xp.ascontiguousarray(phases.transpose(0, 1, 2, 5, 3, 4)) if batch_last else phases


def conv_backward_weight(x, gy, w_shape, stride, padding, groups, plan, col=None):
    """gW (C_out, C/G, kH, kW) = sum over bands of gy @ col(x)^T (batch and positions summed);
    ``col``, the whole im2col of x if the forward kept it, saves rebuilding it."""
    n, _, oh, ow = gy.shape
    transposed = _weight_grad_transposed(n * oh * ow, plan)
    if col is not None:
        return _weight_from_grad(_weight_grad_band(col, gy, 0, oh, groups, transposed), w_shape, transposed)
    gw = 0
    for first, stop, col in im2col_bands(x, w_shape[2:], stride, padding, (oh, ow), plan):
        gw = gw + _weight_grad_band(col, gy, first, stop, groups, transposed)
    return _weight_from_grad(gw, w_shape, transposed)


def _bias_grad(gy):
    return gy.sum(axis=(0, 2, 3))


class Conv2dFunction(Function):
    """y = conv(x, w) + b; keeps x and w, and the im2col block when it was built whole (one band);
    otherwise the weight gradient rebuilds it band by band. ``plan``: the layout (default: the
    input's device's, :meth:`ConvPlan.for_device`)."""

    def __init__(self, stride, padding, groups, plan=None):
        self.stride, self.padding, self.groups, self.plan = stride, padding, groups, plan

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        self.plan = self.plan or ConvPlan.for_device(device_of(x))
        y, self.col = conv_forward_data(x, w, self.stride, self.padding, self.groups, self.plan, bias=b)
        return y

    def backward(self, gy):
        needs = self.needs_input_grad  # a first layer's input (features) wants no gradient
        conv = (self.stride, self.padding, self.groups, self.plan)
        gx = conv_backward_data(gy, self.w, self.x.shape[2:], *conv) if needs[0] else None
        gw = conv_backward_weight(self.x, gy, self.w.shape, *conv, col=self.col) if needs[1] else None
        return gx, gw, (_bias_grad(gy) if len(needs) == 3 and needs[2] else None)


class ConvTranspose2dFunction(Function):
    """y = conv^T(x, w) + b, the adjoint of the convolution with weight w (C_in, C_out/G, kH, kW).
    Backward: gx = conv(gy, w) and gw from one pass of im2col bands of gy."""

    def __init__(self, stride, padding, output_padding, groups, plan=None):
        self.stride, self.padding, self.groups, self.plan = stride, padding, groups, plan
        self.output_padding = output_padding

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        self.plan = self.plan or ConvPlan.for_device(device_of(x))
        out_size = tuple(conv_transpose_output_size(s, k, st, p, op) for s, k, st, p, op in
                         zip(x.shape[2:], w.shape[2:], self.stride, self.padding, self.output_padding))
        return conv_backward_data(x, w, out_size, self.stride, self.padding, self.groups, self.plan, bias=b)

    def backward(self, gy):
        needs = self.needs_input_grad
        conv = (self.stride, self.padding, self.groups, self.plan)
        if needs[0]:
            gx, gw = conv_forward_data_and_weight_grad(gy, self.w, self.x, *conv)
        else:  # gy's im2col for the weight gradient alone
            gx, gw = None, conv_backward_weight(gy, self.x, self.w.shape, *conv)
        return gx, (gw if needs[1] else None), (_bias_grad(gy) if len(needs) == 3 and needs[2] else None)


def check_conv(op, x, w, b, groups, in_per_group_axis):
    """One clear ValueError naming ``op`` for inputs that do not fit together: ranks, float dtypes,
    channels against the weight (whose input-channel axis is ``in_per_group_axis``), groups, bias."""
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    check_rank(op, "weight", w, 4, "(C_out, C_in/groups, kH, kW)" if in_per_group_axis == 1
               else "(C_in, C_out/groups, kH, kW)")
    check_float(op, x, w, b)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    channels = x.shape[1]
    expected = w.shape[1] * groups if in_per_group_axis == 1 else w.shape[0]
    out_channels = w.shape[0] if in_per_group_axis == 1 else w.shape[1] * groups
    if channels != expected or w.shape[0] % groups or out_channels % groups:
        raise ValueError(f"{op}: input shape {tuple(x.shape)} does not fit weight shape {tuple(w.shape)} "
                         f"with groups={groups} (expected {expected} input channels, and channel "
                         f"counts divisible by groups)")
    if b is not None and tuple(b.shape) != (out_channels,):
        raise ValueError(f"{op}: bias shape {tuple(b.shape)}, expected ({out_channels},)")


_REFERENCE = threading.local()


@contextlib.contextmanager
def reference_convolutions(active=True):
    """Within this block (this thread), conv2d, conv_transpose2d and sparse_input_conv2d compute as
    their plain definitions in conv_reference.py: the same results, without the layout engine, slowly."""
    previous = reference_active()
    _REFERENCE.active = active
    try:
        yield
    finally:
        _REFERENCE.active = previous


def reference_active():
    """Whether :func:`reference_convolutions` is in force in this thread."""
    return getattr(_REFERENCE, "active", False)


def check_conv2d_size(op, x, w, stride, padding):
    """One clear ValueError naming ``op`` unless the kernel fits the padded input (at least one
    output position), stride >= 1 and padding >= 0."""
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if w.shape[2] > padded[0] or w.shape[3] > padded[1] or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: kernel {tuple(w.shape[2:])} larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {padding}), or stride {stride} < 1, "
                         "or negative padding")


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution of x (N, C, H, W) with w (C_out, C/groups, kH, kW) and bias b (C_out,)."""
    stride, padding = pair(stride, "conv2d: stride"), pair(padding, "conv2d: padding")
    check_conv("conv2d", x, w, b, groups, in_per_group_axis=1)
    check_conv2d_size("conv2d", x, w, stride, padding)
    fn = Conv2dReference(stride, padding, groups) if reference_active() else Conv2dFunction(stride, padding, groups)
    return fn(x, w) if b is None else fn(x, w, b)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1):
    """Transposed convolution of x (N, C_in, H, W) with w (C_in, C_out/groups, kH, kW), bias (C_out,)."""
    stride, padding = pair(stride, "conv_transpose2d: stride"), pair(padding, "conv_transpose2d: padding")
    output_padding = pair(output_padding, "conv_transpose2d: output_padding")
    check_conv("conv_transpose2d", x, w, b, groups, in_per_group_axis=0)
    out = [conv_transpose_output_size(s, k, st, p, op) for s, k, st, p, op in
           zip(x.shape[2:], w.shape[2:], stride, padding, output_padding)]
    if min(out) < 1 or min(stride) < 1 or min(padding) < 0 or \
            any(op >= st for op, st in zip(output_padding, stride)):
        raise ValueError(f"conv_transpose2d: input shape {tuple(x.shape)} with weight {tuple(w.shape)}, "
                         f"stride {stride}, padding {padding}, output_padding {output_padding} gives "
                         f"output size {tuple(out)}; need a positive size, stride >= 1 and "
                         "output_padding < stride")
    if reference_active():
        fn = ConvTranspose2dReference(stride, padding, groups, tuple(out))
    else:
        fn = ConvTranspose2dFunction(stride, padding, output_padding, groups)
    return fn(x, w) if b is None else fn(x, w, b)
