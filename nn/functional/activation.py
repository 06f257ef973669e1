"""Pointwise nonlinearities: ReLU, leaky ReLU, tanh and the logistic sigmoid."""
from ..backend import get_array_module
from ..fused import (leaky_relu_backward, leaky_relu_backward_any_slope, leaky_relu_forward,
                     leaky_relu_forward_any_slope, relu_forward)
from ..function import Function
from .validation import check_float


class LeakyReLUFunction(Function):
    """y = x where x > 0, else slope * x;  dx = gy where x > 0, else slope * gy.

    With ``slope = 0`` this is the ReLU. The decoders use slope 0.2 after every layer but the last.
    Backward needs the sign of x: with slope >= 0, y has it, and y is kept anyway (the next
    layer's input), so nothing new is stored. For 0 <= slope <= 1 both passes are written with
    ``maximum`` (y = max(x, slope x), gx = max(sign(y), slope) gy), which NumPy runs about four
    times as fast as a ``where``; other slopes take the ``where`` forms. Each pass is one fused
    kernel on the GPU (nn.fused).
    """

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope
        self.max_form = 0 <= negative_slope <= 1

    def forward(self, x):
        slope = x.dtype.type(self.negative_slope)
        if self.negative_slope == 0:
            y = relu_forward(x)  # max(x, 0 x) would turn +inf into NaN
        elif self.max_form:
            y = leaky_relu_forward(x, slope)
        else:
            y = leaky_relu_forward_any_slope(x, slope)
        self.sign_source = y if self.negative_slope >= 0 else x
        return y

    def backward(self, gy):
        kernel = leaky_relu_backward if self.max_form else leaky_relu_backward_any_slope
        return kernel(self.sign_source, gy, gy.dtype.type(self.negative_slope))


def relu(x):
    """max(x, 0)."""
    check_float("relu", x)
    return LeakyReLUFunction(0.0)(x)


def leaky_relu(x, negative_slope=0.01):
    """x if x > 0 else negative_slope * x (PyTorch's default slope; the paper's decoders use 0.2)."""
    check_float("leaky_relu", x)
    return LeakyReLUFunction(negative_slope)(x)


class TanhFunction(Function):
    """y = tanh(x);  dx = gy (1 - y^2)."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class SigmoidFunction(Function):
    """y = 1 / (1 + exp(-x)), computed from e = exp(-|x|) as 1 / (1 + e) for x >= 0 and
    e / (1 + e) below (no overflow, full relative precision on both tails); dx = gy y (1 - y)."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


def tanh(x):
    check_float("tanh", x)
    return TanhFunction()(x)


def sigmoid(x):
    check_float("sigmoid", x)
    return SigmoidFunction()(x)
