"""conv2d and conv_transpose2d (NCHW): read nn/functional/conv_reference.py first.

conv_reference.py is the plain definition on one page: im2col, one matrix product per group and
col2im, forward and backward. This file computes the same numbers (the tests hold the two to each
other) through the layout engine of nn/functional/conv_engine/, which cuts the same GEMMs into
cache-sized bands on the CPU and gathers by index on the GPU. Here are only the public ops, their
argument checks and their Functions, which call the engine's three primitives:

    conv2d:            y = conv_forward_data(x, w)         gx = conv_backward_data(gy, w)
                                                           gw = conv_backward_weight(x, gy)
    conv_transpose2d:  y = conv_backward_data(x, w)        gx, gw = conv_forward_data_and_weight_grad(gy, w, x)

The transposed convolution is by definition the adjoint of the convolution, so
``<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>`` holds by construction (and is tested).

Sizes: OH = (H + 2 pH - kH) // sH + 1 for conv2d; OH = (H - 1) sH - 2 pH + kH + output_padding for
conv_transpose2d. conv2d also takes PyTorch's ``padding='valid'`` (none) and ``padding='same'``
(stride 1; kH - 1 rows in all, the odd one at the bottom: :func:`resolve_padding`).
"""
import contextlib
import threading

from ..backend import device_of, get_array_module
from ..function import Function
from .conv_engine import (ConvPlan, conv_backward_data, conv_backward_weight, conv_forward_data,
                          conv_forward_data_and_weight_grad)
from .conv_reference import Conv2dReference, ConvTranspose2dReference
from .validation import check_float, check_rank, pair


def conv_transpose_output_size(size, kernel, stride, padding, output_padding):
    """(size - 1) stride - 2 padding + kernel + output_padding."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


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
    if x.shape[1] == 0 or 0 in w.shape:
        raise ValueError(f"{op}: input shape {tuple(x.shape)} and weight shape {tuple(w.shape)}: channels and "
                         "kernel sizes must be at least 1 (an empty sum is no convolution)")
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


def resolve_padding(op, padding, kernel, stride):
    """(padding, extra): the symmetric padding (pH, pW) and the extra (rows, columns) of zeros that
    go below and to the right of the input, from an int, a pair, or PyTorch's strings:

    * ``"valid"``: no padding;
    * ``"same"``: the output has the input's size (stride 1 only); each axis gets k - 1 padding
      in all, (k - 1) // 2 on each side and, for an even kernel, the odd one at the bottom (right),
      as PyTorch places it. (PyTorch's rule is dilation (k - 1); these convolutions have no dilation.)
    """
    if not isinstance(padding, str):
        return pair(padding, f"{op}: padding"), (0, 0)
    if padding not in ("same", "valid"):
        raise ValueError(f"{op}: padding {padding!r} is not one of 'same', 'valid' (or an int or a pair of ints)")
    if padding == "valid":
        return (0, 0), (0, 0)
    if tuple(stride) != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1 (got stride {tuple(stride)}), as in PyTorch; "
                         "give the padding as an int or a pair")
    return tuple((k - 1) // 2 for k in kernel), tuple((k - 1) % 2 for k in kernel)


class PadBottomRight(Function):
    """y = x (N, C, H, W) with ``extra`` = (rows, columns) of zeros appended below and to the right,
    (N, C, H + rows, W + columns);  dx = gy's top-left (H, W) part."""

    def __init__(self, extra):
        self.extra = extra

    def forward(self, x):
        return get_array_module(x).pad(x, ((0, 0), (0, 0), (0, self.extra[0]), (0, self.extra[1])))

    def backward(self, gy):
        h, w = gy.shape[2] - self.extra[0], gy.shape[3] - self.extra[1]
        return get_array_module(gy).ascontiguousarray(gy[:, :, :h, :w])


def pad_for_conv(op, x, w, stride, padding):
    """(x, padding): ``padding`` resolved by :func:`resolve_padding` to a symmetric pair, and x with
    the extra zeros of an asymmetric ``"same"`` appended."""
    padding, extra = resolve_padding(op, padding, w.shape[2:], stride)
    return (PadBottomRight(extra)(x) if any(extra) else x), padding


def check_conv2d_size(op, x, w, stride, padding):
    """One clear ValueError naming ``op`` unless the kernel fits the padded input (at least one
    output position), stride >= 1 and padding >= 0."""
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if w.shape[2] > padded[0] or w.shape[3] > padded[1] or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: kernel {tuple(w.shape[2:])} larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {padding}), or stride {stride} < 1, "
                         "or negative padding")


def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
    """2-D convolution of x (N, C, H, W) with w (C_out, C/groups, kH, kW) and bias b (C_out,);
    ``padding``: an int, a pair, ``"valid"`` or ``"same"`` (:func:`resolve_padding`)."""
    stride = pair(stride, "conv2d: stride")
    check_conv("conv2d", x, w, b, groups, in_per_group_axis=1)
    x, padding = pad_for_conv("conv2d", x, w, stride, padding)
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
