"""2-D convolution and transposed convolution (NCHW), built from three shared primitives.

Notation: x (N, C, H, W); weight w (C_out, C/groups, kH, kW) as PyTorch and Caffe store it;
stride (sH, sW); padding (pH, pW); output (N, C_out, OH, OW) with OH = (H + 2 pH - kH) // sH + 1.

Convolution (cross-correlation, as every framework computes it)::

    y[n, o, i, j] = b[o] + sum_{c in group(o), u, v} w[o, c, u, v] * x_pad[n, c, i sH + u, j sW + v]

It is computed as one GEMM per group over an im2col buffer ``col`` of shape
(C, kH, kW, N, OH, OW) (columns ordered so that a group's rows and the batch's columns are both
contiguous): ``col[c, u, v, n, i, j] = x_pad[n, c, i sH + u, j sW + v]``. ``im2col`` first copies
the padded image once into a *phase layout* (sH, sW, C, N, QH, QW), where row q of phase a is
padded row q sH + a; kernel offset (u, v) then reads the contiguous block of phase
(u mod sH, v mod sW) starting at (u // sH, v // sW), so the kH*kW copies are plain block copies
rather than strided gathers. ``col2im`` is its adjoint: each offset's slice is added into a zeroed
phase layout (contiguous adds), which is interleaved back into (N, C, H, W) once.

The three primitives, each one GEMM (batched over groups):

* :func:`conv_forward_data`:   y  = W  @ col(x)                 (G, Co/G, C/G kH kW) @ (G, C/G kH kW, N OH OW)
* :func:`conv_backward_data`:  gx = col2im(W^T @ gy)            the adjoint of the map x -> y
* :func:`conv_backward_weight`: gW = gy @ col(x)^T

The transposed convolution is by definition the adjoint of the convolution: with weight
(C_in, C_out/groups, kH, kW), ``conv_transpose2d(x, w) = conv_backward_data(x, w)``; its input
gradient is ``conv_forward_data(gy, w)`` and its weight gradient ``conv_backward_weight(col(gy), x)``.
So ``<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>`` holds by construction (and is tested).
Its output size is OH = (H - 1) sH - 2 pH + kH + output_padding.
"""
from ..backend import get_array_module
from ..function import Function
from .validation import check_float, check_rank, pair


def conv_output_size(size, kernel, stride, padding):
    """(size + 2 padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, output_padding):
    """(size - 1) stride - 2 padding + kernel + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def _phase_extent(size, padding, out, kernel, stride):
    """Rows (or columns) per phase: enough for every window (out + (kernel - 1) // stride) and for
    the padded image's first padding + size rows."""
    return max(out + (kernel - 1) // stride, -(-(size + padding) // stride))


def _phase_range(phase, padding, stride, size, extent):
    """For one phase along one axis: (first phase index q0, the image row it holds, how many rows)."""
    q0 = max(0, -(-(padding - phase) // stride))
    start = q0 * stride + phase - padding
    return q0, start, max(0, min(extent - q0, -(-(size - start) // stride)))


def to_phases(x, padding, stride, extent):
    """x (N, C, H, W) -> phases (sH, sW, C, N, QH, QW) of the zero-padded image, split by stride
    phase: ``phases[a, b, c, n, q, r] = x_pad[n, c, q sH + a, r sW + b]`` (one strided copy per phase).

    Kernel offset (u, v) then reads the contiguous block ``phases[u % sH, v % sW, :, :,
    u // sH : u // sH + OH, v // sW : v // sW + OW]`` instead of a strided one.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (ph, pw), (sh, sw), (qh, qw) = padding, stride, extent
    phases = xp.zeros((sh, sw, c, n, qh, qw), dtype=x.dtype)
    x_by_channel = x.transpose(1, 0, 2, 3)
    for a in range(sh):
        q0, row, rows = _phase_range(a, ph, sh, h, qh)
        for b in range(sw):
            r0, col, cols = _phase_range(b, pw, sw, w, qw)
            if rows == 0 or cols == 0:  # this phase holds padding only
                continue
            phases[a, b, :, :, q0:q0 + rows, r0:r0 + cols] = \
                x_by_channel[:, :, row:row + sh * (rows - 1) + 1:sh, col:col + sw * (cols - 1) + 1:sw]
    return phases


def from_phases(phases, padding, image_size):
    """The adjoint of :func:`to_phases`: interleave the phases back and cut the padding off."""
    xp = get_array_module(phases)
    sh, sw, c, n, qh, qw = phases.shape
    (ph, pw), (h, w) = padding, image_size
    image = xp.empty((n, c, qh, sh, qw, sw), dtype=phases.dtype)
    for a in range(sh):  # one copy per phase keeps the inner loop long (rows of QW values)
        for b in range(sw):
            image[:, :, :, a, :, b] = phases[a, b].transpose(1, 0, 2, 3)
    return image.reshape(n, c, qh * sh, qw * sw)[:, :, ph:ph + h, pw:pw + w]


def _offset_block(u, v, stride, out_size):
    """Index of kernel offset (u, v)'s (C, N, OH, OW) block in the phase layout."""
    (sh, sw), (oh, ow) = stride, out_size
    return u % sh, v % sw, slice(None), slice(None), slice(u // sh, u // sh + oh), slice(v // sw, v // sw + ow)


def _extent(image_size, padding, out_size, kernel, stride):
    return tuple(_phase_extent(*args) for args in zip(image_size, padding, out_size, kernel, stride))


def im2col(x, kernel, stride, padding, out_size):
    """x (N, C, H, W) -> col (C, kH, kW, N, OH, OW), col[c,u,v,n,i,j] = x_pad[n, c, i sH + u, j sW + v]:
    one phase-split copy of x, then kH*kW contiguous block copies."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    kh, kw = kernel
    phases = to_phases(x, padding, stride, _extent(x.shape[2:], padding, out_size, kernel, stride))
    col = xp.empty((c, kh, kw, n) + tuple(out_size), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            col[:, u, v] = phases[_offset_block(u, v, stride, out_size)]
    return col


def col2im(col, image_size, stride, padding):
    """The adjoint of :func:`im2col`: col (C, kH, kW, N, OH, OW) -> x (N, C, H, W), overlaps summed
    into a zeroed phase layout (contiguous adds), then interleaved once."""
    xp = get_array_module(col)
    c, kh, kw, n, oh, ow = col.shape
    extent = _extent(image_size, padding, (oh, ow), (kh, kw), stride)
    phases = xp.zeros(tuple(stride) + (c, n) + extent, dtype=col.dtype)
    for u in range(kh):
        for v in range(kw):
            phases[_offset_block(u, v, stride, (oh, ow))] += col[:, u, v]
    return from_phases(phases, padding, image_size)


def _grouped_weight(w, groups):
    """w (C_out, C/G, kH, kW) -> (G, C_out/G, C/G kH kW): one GEMM operand per group."""
    return w.reshape(groups, w.shape[0] // groups, -1)


def _channels_first(y, groups):
    """y (N, C, H, W) -> (G, C/G, N H W), contiguous (one copy)."""
    xp = get_array_module(y)
    n, c = y.shape[:2]
    return xp.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(groups, c // groups, -1)


def _batch_first(y_grouped, n, size):
    """(G, C/G, N H W) -> (N, C, H, W), contiguous."""
    xp = get_array_module(y_grouped)
    g, cg = y_grouped.shape[:2]
    return xp.ascontiguousarray(y_grouped.reshape(g * cg, n, *size).transpose(1, 0, 2, 3))


def conv_forward_data(x, w, stride, padding, groups):
    """Returns (y (N, C_out, OH, OW), col grouped (G, C/G kH kW, N OH OW)) for y = conv(x, w)."""
    kernel = w.shape[2:]
    out_size = tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(x.shape[2:], kernel, stride, padding))
    col = im2col(x, kernel, stride, padding, out_size).reshape(groups, -1, x.shape[0] * out_size[0] * out_size[1])
    y = _grouped_weight(w, groups) @ col
    return _batch_first(y, x.shape[0], out_size), col


def conv_backward_data(gy, w, image_size, stride, padding, groups):
    """gx (N, C, H, W) = col2im(W^T gy): the adjoint of x -> conv(x, w), for input size ``image_size``."""
    n, _, oh, ow = gy.shape
    gcol = _grouped_weight(w, groups).transpose(0, 2, 1) @ _channels_first(gy, groups)
    c = w.shape[1] * groups
    gcol = gcol.reshape(c, w.shape[2], w.shape[3], n, oh, ow)
    return col2im(gcol, image_size, stride, padding)


def conv_backward_weight(col, gy, w_shape, groups):
    """gW (C_out, C/G, kH, kW) = gy @ col^T, summed over batch and positions in one GEMM per group.

    Computed as (col @ gy^T)^T: the same products, but OpenBLAS runs this orientation (the large
    operand on the left, the long N OH OW axis contracted) several times faster for the decoders'
    shapes (e.g. 5-10x for upconvJ5's 64 x 32768 x 512); only the small result is transposed.
    """
    gw_t = col @ _channels_first(gy, groups).transpose(0, 2, 1)  # (G, C/G kH kW, C_out/G)
    return gw_t.transpose(0, 2, 1).reshape(w_shape)


def _bias_grad(gy):
    return gy.sum(axis=(0, 2, 3))


class Conv2d(Function):
    """y = conv(x, w) + b; keeps the im2col buffer for the weight gradient."""

    def __init__(self, stride, padding, groups):
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x, w, b=None):
        y, self.col = conv_forward_data(x, w, self.stride, self.padding, self.groups)
        self.w, self.image_size = w, x.shape[2:]
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        gx = conv_backward_data(gy, self.w, self.image_size, self.stride, self.padding, self.groups)
        gw = conv_backward_weight(self.col, gy, self.w.shape, self.groups)
        return gx, gw, _bias_grad(gy)


class ConvTranspose2d(Function):
    """y = conv^T(x, w) + b, the adjoint of the convolution with weight w (C_in, C_out/G, kH, kW)."""

    def __init__(self, stride, padding, output_padding, groups):
        self.stride, self.padding, self.groups = stride, padding, groups
        self.output_padding = output_padding

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        out_size = tuple(conv_transpose_output_size(s, k, st, p, op) for s, k, st, p, op in
                         zip(x.shape[2:], w.shape[2:], self.stride, self.padding, self.output_padding))
        y = conv_backward_data(x, w, out_size, self.stride, self.padding, self.groups)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        gx, col = conv_forward_data(gy, self.w, self.stride, self.padding, self.groups)
        gw = conv_backward_weight(col, self.x, self.w.shape, self.groups)
        return gx, gw, _bias_grad(gy)


def _check_conv(op, x, w, b, groups, in_per_group_axis):
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


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution of x (N, C, H, W) with w (C_out, C/groups, kH, kW) and bias b (C_out,)."""
    stride, padding = pair(stride, "conv2d: stride"), pair(padding, "conv2d: padding")
    _check_conv("conv2d", x, w, b, groups, in_per_group_axis=1)
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if w.shape[2] > padded[0] or w.shape[3] > padded[1] or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: kernel {tuple(w.shape[2:])} larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {padding}), or stride {stride} < 1, "
                         "or negative padding")
    fn = Conv2d(stride, padding, groups)
    return fn(x, w) if b is None else fn(x, w, b)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1):
    """Transposed convolution of x (N, C_in, H, W) with w (C_in, C_out/groups, kH, kW), bias (C_out,)."""
    stride, padding = pair(stride, "conv_transpose2d: stride"), pair(padding, "conv_transpose2d: padding")
    output_padding = pair(output_padding, "conv_transpose2d: output_padding")
    _check_conv("conv_transpose2d", x, w, b, groups, in_per_group_axis=0)
    out = [conv_transpose_output_size(s, k, st, p, op) for s, k, st, p, op in
           zip(x.shape[2:], w.shape[2:], stride, padding, output_padding)]
    if min(out) < 1 or min(stride) < 1 or min(padding) < 0 or \
            any(op >= st for op, st in zip(output_padding, stride)):
        raise ValueError(f"conv_transpose2d: input shape {tuple(x.shape)} with weight {tuple(w.shape)}, "
                         f"stride {stride}, padding {padding}, output_padding {output_padding} gives "
                         f"output size {tuple(out)}; need a positive size, stride >= 1 and "
                         "output_padding < stride")
    fn = ConvTranspose2d(stride, padding, output_padding, groups)
    return fn(x, w) if b is None else fn(x, w, b)
