"""The two convolutions as their definitions: im2col and one matrix product. A page to read.

For x (N, C, H, W), weight w (C_out, C/G, kH, kW), stride s, padding p and G groups::

    y[n, o, i, j] = b[o] + sum_{c in group(o), u, v} w[o, c, u, v] * x_pad[n, c, i s + u, j s + v]

``im2col_nchw`` lays the window under each output pixel out as a column, batch first::

    col[n, (c, u, v), (i, j)] = x_pad[n, c, i s + u, j s + v]            (N, C kH kW, OH OW)

so the convolution is one matrix product per group, ``y = W @ col``. Its backward is two more:

    dW = sum_n  gy @ col^T         dcol = W^T @ gy        dx = col2im(dcol)

where ``col2im_nchw``, the adjoint of ``im2col_nchw``, adds every column entry back onto the
pixel it was read from. The transposed convolution (weight (C_in, C_out/G, kH, kW)) is the adjoint of the
convolution: its forward is the convolution's ``dx`` computation and its backward the
convolution's forward, so ``<conv2d(x, w), y> = <x, conv_transpose2d(y, w)>``.

This is what ``nn/functional/conv.py`` computes, without its layout engine
(``nn/functional/conv_engine/``: row bands, stride phases, gathers, with a channel-first im2col
(C, kH, kW, N, OH, OW)); the tests hold the two to each other, and ``cli.py train --reference`` trains
with these (slowly).
"""
from ..backend import get_array_module
from ..function import Function


def conv_output_size(size, kernel, stride, padding):
    """(size + 2 padding - kernel) // stride + 1 (the engine uses this too)."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col_nchw(x, kernel, stride, padding):
    """x (N, C, H, W) -> col (N, C kH kW, OH OW)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    col = xp.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            col[:, :, u, v] = x_pad[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw]
    return col.reshape(n, c * kh * kw, oh * ow)


def col2im_nchw(col, image_shape, kernel, stride, padding):
    """The adjoint of :func:`im2col_nchw`: col (N, C kH kW, OH OW) -> x (N, C, H, W), summing overlaps."""
    xp = get_array_module(col)
    n, c, h, w = image_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    col = col.reshape(n, c, kh, kw, oh, ow)
    x_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for u in range(kh):
        for v in range(kw):
            x_pad[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw] += col[:, :, u, v]
    return x_pad[:, :, ph:ph + h, pw:pw + w]


def _forward(x, w, stride, padding, groups):
    """y (N, C_out, OH, OW) = W @ im2col_nchw(x), per group; also returns col for the backward."""
    n, c, h, width = x.shape
    c_out, _, kh, kw = w.shape
    col = im2col_nchw(x, (kh, kw), stride, padding)
    oh, ow = conv_output_size(h, kh, stride[0], padding[0]), conv_output_size(width, kw, stride[1], padding[1])
    col_g = col.reshape(n, groups, -1, oh * ow)                      # (N, G, C/G kH kW, OH OW)
    w_g = w.reshape(groups, c_out // groups, -1)                     # (G, C_out/G, C/G kH kW)
    return (w_g @ col_g).reshape(n, c_out, oh, ow), col


def _data_grad(gy, w, image_shape, stride, padding, groups):
    """dx = col2im_nchw(W^T @ gy), per group."""
    n, c_out, oh, ow = gy.shape
    w_g = w.reshape(groups, c_out // groups, -1)
    dcol = w_g.transpose(0, 2, 1) @ gy.reshape(n, groups, c_out // groups, oh * ow)
    return col2im_nchw(dcol.reshape(n, -1, oh * ow), image_shape, w.shape[2:], stride, padding)


def _weight_grad(gy, col, w_shape, groups):
    """dW = sum_n gy @ col^T, per group."""
    n, c_out = gy.shape[:2]
    gy_g = gy.reshape(n, groups, c_out // groups, -1)
    col_g = col.reshape(n, groups, -1, col.shape[-1])
    return (gy_g @ col_g.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w_shape)


class Conv2dReference(Function):
    def __init__(self, stride, padding, groups):
        self.stride, self.padding, self.groups = stride, padding, groups

    def forward(self, x, w, b=None):
        y, self.col = _forward(x, w, self.stride, self.padding, self.groups)
        self.x_shape, self.w = x.shape, w
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def backward(self, gy):
        gx = _data_grad(gy, self.w, self.x_shape, self.stride, self.padding, self.groups)
        return gx, _weight_grad(gy, self.col, self.w.shape, self.groups), gy.sum(axis=(0, 2, 3))


class ConvTranspose2dReference(Function):
    """y = the convolution's dx applied to x; the output size is given (output_padding)."""

    def __init__(self, stride, padding, groups, out_size):
        self.stride, self.padding, self.groups, self.out_size = stride, padding, groups, out_size

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        n, _, _, _ = x.shape
        y = _data_grad(x, w, (n, w.shape[1] * self.groups) + tuple(self.out_size), self.stride, self.padding,
                       self.groups)
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def backward(self, gy):
        gx, col = _forward(gy, self.w, self.stride, self.padding, self.groups)
        return gx, _weight_grad(self.x, col, self.w.shape, self.groups), gy.sum(axis=(0, 2, 3))
