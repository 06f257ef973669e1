"""Pointwise nonlinearities: ReLU and leaky ReLU."""
from ..fused import leaky_relu_backward, leaky_relu_forward
from ..function import Function
from .validation import check_float


class LeakyReLU(Function):
    """y = x where x > 0, else slope * x;  dx = gy where x > 0, else slope * gy.

    With ``slope = 0`` this is the ReLU. The decoders use slope 0.2 after every layer but the last.
    Backward needs the sign of x: with slope >= 0, y has it, and y is kept anyway (the next
    layer's input), so nothing new is stored. Each pass is one fused kernel on the GPU (nn.fused).
    """

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        y = leaky_relu_forward(x, x.dtype.type(self.negative_slope))
        self.sign_source = y if self.negative_slope >= 0 else x
        return y

    def backward(self, gy):
        return leaky_relu_backward(self.sign_source, gy, gy.dtype.type(self.negative_slope))


def relu(x):
    """max(x, 0)."""
    check_float("relu", x)
    return LeakyReLU(0.0)(x)


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x (the paper's decoders use 0.2)."""
    check_float("leaky_relu", x)
    return LeakyReLU(negative_slope)(x)
