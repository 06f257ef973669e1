"""The CPU's im2col: a stride-phase copy of the padded image, then im2col in row bands.

Notation as nn/functional/conv_reference.py: x (N, C, H, W), kernel (kH, kW), stride (sH, sW),
padding (pH, pW), output (OH, OW). The engine's im2col buffer is channel-first,
``col[c, u, v, n, i, j] = x_pad[n, c, i sH + u, j sW + v]`` of shape (C, kH, kW, N, OH, OW), so
that a group's rows and the batch's columns are both contiguous GEMM operands.

*Phase layout.* The padded image is first copied once into a phase layout (sH, sW, C, N, QH, QW),
where row q of phase a is padded row q sH + a. Kernel offset (u, v) then reads the contiguous block
of phase (u mod sH, v mod sW) starting at (u // sH, v // sW), so filling ``col`` takes kH*kW block
copies instead of strided gathers; :func:`from_phases` interleaves a phase layout back into
(N, C, H, W).

*Row bands.* ``col`` is kH*kW times the size of the image, so it is never built whole: the output
rows are cut into bands whose im2col block fits ``ConvPlan.band_bytes`` (a few MiB, so that a band
stays in the processor's cache). Each band's block is filled, used by its GEMMs while it is still
in cache, and overwritten by the next band. The GEMMs are the same as on one whole buffer, cut
along their long N*OH*OW axis. With ``ConvPlan.gather`` (the GPU) :func:`im2col_bands` yields one
band built by :func:`~nn.functional.conv_engine.gather.im2col_by_gather` instead.

One file for phases and bands: the bands are cut from the phase layout and nothing else uses it.
"""
from ...backend import get_array_module
from .gather import im2col_by_gather


def _phase_extent(size, padding, out, kernel, stride):
    """Rows (or columns) per phase: enough for every window (out + (kernel - 1) // stride) and for
    the padded image's first padding + size rows."""
    return max(out + (kernel - 1) // stride, -(-(size + padding) // stride))


def phase_extents(image_size, padding, out_size, kernel, stride):
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


def add_col(phases, col, stride, first_row, batch_last=False):
    """The adjoint of :func:`_fill_col`: phases (sH, sW, C, N, QH, QW) += each offset's (C, N, b, OW)
    slice of col (C, kH, kW, N, b, OW). With ``batch_last`` the batch axis is last in both, phases
    (sH, sW, C, QH, QW, N) and col (C, kH, kW, b, OW, N): a phase row of every image is one run."""
    kh, kw = col.shape[1:3]
    rows, width = col.shape[3:5] if batch_last else col.shape[4:6]
    for u in range(kh):
        for v in range(kw):
            block = _offset_block(u, v, stride, first_row, rows, width)
            phases[block[:3] + block[4:] if batch_last else block] += col[:, u, v]


def im2col_cnhw(x, kernel, stride, padding, out_size):
    """x (N, C, H, W) -> the whole channel-first col (C, kH, kW, N, OH, OW) (for tests; the ops
    use :func:`im2col_bands`)."""
    xp = get_array_module(x)
    phases = to_phases(x, padding, stride, phase_extents(x.shape[2:], padding, out_size, kernel, stride))
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
    phases = to_phases(x, padding, stride, phase_extents(x.shape[2:], padding, out_size, kernel, stride))
    row_size = c * kh * kw * n * ow
    bands = row_bands(oh, row_size * x.itemsize, n * ow, plan)
    memory = xp.empty(row_size * (bands[0][1] - bands[0][0]), dtype=x.dtype)
    for first, stop in bands:
        col = memory[:row_size * (stop - first)].reshape(c, kh, kw, n, stop - first, ow)
        _fill_col(col, phases, stride, first)
        yield first, stop, col
