"""Max-pooling over kH x kW windows (NCHW), with Caffe's ceil-mode output size available.

y[n, c, i, j] = max_{u < kH, v < kW} x_pad[n, c, i sH + u, j sW + v], with padding (and any
ceil-mode overhang) filled with -inf so that it never wins. The forward pass keeps, per output,
which kernel offset held the maximum (the first one on ties, as PyTorch); backward routes gy
to that position:  gx_pad[n, c, i sH + u*, j sW + v*] += gy[n, c, i, j].
"""
import math

from ..backend import get_array_module
from ..function import Function
from .validation import check_float, check_rank, pair


def _offset_slices(u, v, stride, out_h, out_w):
    """Rows u, u+sH, ... and columns v, v+sW, ... of the padded image that kernel offset (u, v) reads."""
    sh, sw = stride
    return slice(u, u + sh * (out_h - 1) + 1, sh), slice(v, v + sw * (out_w - 1) + 1, sw)


def pool_output_size(size, kernel, stride, padding, ceil_mode):
    """floor or ceil of (size + 2 padding - kernel) / stride, plus one; in ceil mode the last window
    must start inside the input or its left padding (PyTorch's and Caffe's rule)."""
    span = size + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class MaxPool2dFunction(Function):
    def __init__(self, kernel, stride, padding, out_size):
        self.kernel, self.stride, self.padding, self.out_size = kernel, stride, padding, out_size

    def _canvas_size(self, image_size):
        """Padded extent that the windows cover: top/left padding, then up to the last window's end."""
        return tuple((o - 1) * s + k for o, s, k in zip(self.out_size, self.stride, self.kernel))

    def forward(self, x):
        xp = get_array_module(x)
        self.in_shape = x.shape
        canvas = xp.full(x.shape[:2] + self._canvas_size(x.shape[2:]), -xp.inf, dtype=x.dtype)
        (ph, pw), (h, w) = self.padding, x.shape[2:]
        canvas[:, :, ph:ph + h, pw:pw + w] = x[:, :, :canvas.shape[2] - ph, :canvas.shape[3] - pw]
        y, self.argmax = None, None
        for offset, (rows, cols) in enumerate(self._offsets()):
            window = canvas[:, :, rows, cols]
            if y is None:
                y, self.argmax = window.copy(), xp.zeros(window.shape, dtype=xp.uint8)
            else:
                better = window > y
                y = xp.where(better, window, y)
                # a where, not a boolean-mask write: a mask write's size depends on the data, and
                # on the GPU it waits for the device once per kernel offset
                self.argmax = xp.where(better, xp.uint8(offset), self.argmax)
        return y

    def _offsets(self):
        kh, kw = self.kernel
        return [_offset_slices(u, v, self.stride, *self.out_size) for u in range(kh) for v in range(kw)]

    def backward(self, gy):
        xp = get_array_module(gy)
        n, c, h, w = self.in_shape
        canvas = xp.zeros((n, c) + self._canvas_size((h, w)), dtype=gy.dtype)
        zero = gy.dtype.type(0)
        for offset, (rows, cols) in enumerate(self._offsets()):
            canvas[:, :, rows, cols] += xp.where(self.argmax == offset, gy, zero)
        (ph, pw) = self.padding
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        kept = canvas[:, :, ph:ph + h, pw:pw + w]
        gx[:, :, :kept.shape[2], :kept.shape[3]] = kept
        return gx


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max-pool x (N, C, H, W); stride defaults to kernel_size; ceil_mode as Caffe (CaffeNet uses it)."""
    check_rank("max_pool2d", "input", x, 4, "(N, C, H, W)")
    check_float("max_pool2d", x)
    kernel = pair(kernel_size, "max_pool2d: kernel_size")
    stride = kernel if stride is None else pair(stride, "max_pool2d: stride")
    padding = pair(padding, "max_pool2d: padding")
    if any(p > k // 2 for p, k in zip(padding, kernel)) or min(stride) < 1:
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel {kernel}, "
                         f"stride {stride} at least 1")
    out = tuple(pool_output_size(s, k, st, p, ceil_mode)
                for s, k, st, p in zip(x.shape[2:], kernel, stride, padding))
    if min(out) < 1:
        raise ValueError(f"max_pool2d: kernel {kernel} larger than the padded input "
                         f"(input shape {tuple(x.shape)}, padding {padding})")
    return MaxPool2dFunction(kernel, stride, padding, out)(x)
