"""The three GEMM primitives of the convolutions, each one GEMM (batched over groups) per band.

Notation as nn/functional/conv_reference.py; ``col`` is the channel-first im2col of
:mod:`.bands` (C, kH, kW, N, OH, OW), ``plan`` a :class:`~.plan.ConvPlan`.

* :func:`conv_forward_data`:    y  = W @ col(x)             (G, Co/G, C/G kH kW) @ (G, C/G kH kW, N b OW)
* :func:`conv_backward_data`:   gx = the adjoint of x -> y, applied to gy. When the kernel is a
  multiple of the stride (every stride-1 convolution, and the 4x4 stride-2 upconvolutions of the
  HOG/SIFT/LBP decoders) it is itself a convolution: each output phase is a stride-1 convolution
  of gy with every s-th kernel tap, reversed, so one GEMM over an im2col of gy yields the phase
  layout directly (see :func:`_transposed_by_phases`). Otherwise (the AlexNet decoders' 5x5
  stride-2 upconvolutions, and layers whose weight is large for their image, where rearranging
  the weight would cost more than the adds it saves: :func:`_by_phases`) it is col2im(W^T @ gy):
  scatter-adds into a zeroed phase layout (with ``plan.gather``: one GEMM and one gather).
* :func:`conv_backward_weight`: gW = sum over bands of gy @ col(x)^T (computed as (col @ gy^T)^T
  when that is faster: :func:`_weight_grad_transposed`). Only a convolution whose whole im2col is
  one band keeps it for its weight gradient; larger ones rebuild the bands in backward.

The transposed convolution's forward is :func:`conv_backward_data` and its backward
:func:`conv_forward_data_and_weight_grad`, so the adjoint identity holds by construction. Every
multiply-add of the convolutions is one of the ``@`` below.
"""
from ...backend import get_array_module
from ..conv_reference import conv_output_size
from .bands import add_col, band_rows, from_phases, im2col_bands, phase_extents, row_bands
from .gather import col2im_by_gather


# --- GEMM operands (the ``@`` is matmul, batched over the leading group axis: BLAS, cuBLAS) ----

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
        return _flat(col, groups) @ rows.transpose(0, 2, 1)
    return rows @ _flat(col, groups).transpose(0, 2, 1)


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
        _store_rows(y, first, stop, weight @ _flat(col, groups), bias)
        yield y, first, stop, col


def conv_backward_data(gy, w, image_size, stride, padding, groups, plan, bias=None):
    """gx (N, C, H, W): the adjoint of x -> conv(x, w) applied to gy (N, C_out, OH, OW), for input size
    ``image_size`` (+ bias (C,)). By stride phases where :func:`_by_phases` says they apply and pay
    (the kernel a multiple of the stride, and enough output positions for the weight), else by
    col2im (with ``plan.gather``: one GEMM and one gather)."""
    if plan.gather:
        weight_t = _grouped_weight(w, groups).transpose(0, 2, 1)
        gcol = weight_t @ _grouped_rows(gy, 0, gy.shape[2], groups)
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
        out = phase_weight @ _flat(col, groups)  # (G, sH sW C/G, N b QW)
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
    extent = phase_extents(image_size, padding, (oh, ow), (kh, kw), stride)
    batch_last = ow < plan.batch_last_max_width
    phases = xp.zeros(tuple(stride) + ((c,) + extent + (n,) if batch_last else (c, n) + extent), dtype=gy.dtype)
    weight_t = _grouped_weight(w, groups).transpose(0, 2, 1)
    for first, stop in row_bands(oh, c * kh * kw * n * ow * gy.itemsize, n * ow, plan):
        gcol = weight_t @ _grouped_rows(gy, first, stop, groups, batch_last)
        band = (stop - first, ow, n) if batch_last else (n, stop - first, ow)
        add_col(phases, gcol.reshape((c, kh, kw) + band), stride, first, batch_last)
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
