"""2-D convolution of a sparse input: one whose pixels are mostly zero in every channel.

SIFT's feature map (models/networks/decoders.py, supplementary Table 3) holds a keypoint's descriptor in
about one 4x4-pixel cell in eighteen and zeros everywhere else. A dense convolution multiplies those
zeros like any other value: in the SIFT decoder's first layer that is most of the network's
multiply-adds. Here the convolution is computed from the P *active* pixels (non-zero in some
channel) only. Notation as nn/functional/conv_reference.py: x (N, C, H, W), weight w (C_out, C, kH, kW),
stride (sH, sW), padding (pH, pW)::

    y[n, :, i, j] = b + sum of w[:, :, u, v] @ x[n, :, r, c] over the active pixels (n, r, c)
                    and the taps (u, v) with r = i sH - pH + u and c = j sW - pW + v

Through one tap (u, v), an active pixel reaches at most one output position,
(i, j) = ((r + pH - u) / sH, (c + pW - v) / sW) when both divisions are exact and land inside the
output, and two pixels never reach the same one. So each tap is one gather of the values of the
pixels it pairs (P_t, C), one GEMM with w[:, :, u, v]^T (C, C_out) and one scatter-add whose
indices do not repeat: about P kH kW / (sH sW) rows of work in all, against the N OH OW kH kW of
the dense convolution.

The result is conv2d's up to the order of the float additions (tested against it and PyTorch).
Backward: the weight gradient from the same pairs, gw[:, :, u, v] = x_t^T gy_t; the bias
gradient is gy summed; the input gradient, which is not sparse, is conv2d's (conv_backward_data).
On the GPU (``ConvPlan.sparse_inputs`` False) the dense convolution is used instead: finding the
active pixels there would stop the device for the host at every tap.
"""
from ..backend import device_of, get_array_module
from ..function import Function
from .conv import check_conv, check_conv2d_size, conv2d, pad_for_conv, reference_active
from .conv_engine import ConvPlan, conv_backward_data
from .conv_reference import conv_output_size
from .validation import pair


def _reached(position, tap, stride, padding, out_size):
    """Through ``tap``, the output index each input ``position`` reaches, and whether it reaches one."""
    shifted = position + padding - tap
    index = shifted // stride
    return index, (shifted % stride == 0) & (shifted >= 0) & (index < out_size)


def active_pixels(x):
    """(image, row, col): the indices of x's pixels that are non-zero in some channel."""
    return get_array_module(x).nonzero((x != 0).any(axis=1))


def tap_pairs(active, kernel, stride, padding, out_size):
    """Yields (u, v, pick, (image, i, j)) for each tap (u, v): ``pick`` indexes the active pixels
    that reach an output through it, (image, i, j) the output position each reaches."""
    xp = get_array_module(active[0])
    image, row, col = active
    for u in range(kernel[0]):
        i, i_inside = _reached(row, u, stride[0], padding[0], out_size[0])
        for v in range(kernel[1]):
            j, j_inside = _reached(col, v, stride[1], padding[1], out_size[1])
            pick = xp.nonzero(i_inside & j_inside)[0]
            yield u, v, pick, (image[pick], i[pick], j[pick])


class SparseInputConv2dFunction(Function):
    """y = conv(x, w) + b computed from x's active pixels; keeps them, their values and, per tap,
    which of them pair with which output position."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        xp = get_array_module(x)
        n, _, h, width = x.shape
        c_out, _, kh, kw = w.shape
        oh, ow = (conv_output_size(*args) for args in zip((h, width), (kh, kw), self.stride, self.padding))
        active = active_pixels(x)  # P pixels
        self.values = x.transpose(0, 2, 3, 1)[active]  # (P, C)
        taps = w.transpose(2, 3, 1, 0)  # (kH, kW, C, C_out)
        y = xp.zeros((n, oh, ow, c_out), dtype=x.dtype)  # channels last while the taps add into it
        self.pairs = list(tap_pairs(active, (kh, kw), self.stride, self.padding, (oh, ow)))
        for u, v, pick, target in self.pairs:
            y[target] += self.values[pick] @ taps[u, v]
        self.x_shape, self.w = x.shape, w
        y = y.transpose(0, 3, 1, 2)
        if b is None:
            return xp.ascontiguousarray(y)
        return xp.add(y, b.reshape(1, -1, 1, 1), out=xp.empty(y.shape, dtype=y.dtype))

    def backward(self, gy):
        xp = get_array_module(gy)
        needs = self.needs_input_grad
        gx = gw = gb = None
        if needs[0]:
            plan = ConvPlan.for_device(device_of(gy))
            gx = conv_backward_data(gy, self.w, self.x_shape[2:], self.stride, self.padding, 1, plan)
        if needs[1]:
            g = xp.ascontiguousarray(gy.transpose(0, 2, 3, 1))  # (N, OH, OW, C_out)
            c_out, c, kh, kw = self.w.shape
            gw_taps = xp.empty((kh, kw, c, c_out), dtype=gy.dtype)
            for u, v, pick, target in self.pairs:
                gw_taps[u, v] = self.values[pick].T @ g[target]
            gw = xp.ascontiguousarray(gw_taps.transpose(3, 2, 0, 1))
        if len(needs) == 3 and needs[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb


def sparse_input_conv2d(x, w, b=None, stride=1, padding=0):
    """conv2d(x, w, b, stride, padding) (groups 1) for an x (N, C, H, W) whose pixels are mostly
    zero in every channel, computed from its non-zero pixels only (on the CPU; the GPU plan and
    ``reference_convolutions`` compute it as conv2d). ``padding`` as conv2d's, strings included."""
    stride = pair(stride, "sparse_input_conv2d: stride")
    check_conv("sparse_input_conv2d", x, w, b, 1, in_per_group_axis=1)
    x, padding = pad_for_conv("sparse_input_conv2d", x, w, stride, padding)
    check_conv2d_size("sparse_input_conv2d", x, w, stride, padding)
    if reference_active() or not ConvPlan.for_device(device_of(x)).sparse_inputs:
        return conv2d(x, w, b, stride, padding)
    fn = SparseInputConv2dFunction(stride, padding)
    return fn(x, w) if b is None else fn(x, w, b)
