"""Pointwise nonlinearities: ReLU and leaky ReLU."""
from ..backend import get_array_module
from ..function import Function


class LeakyReLU(Function):
    """y = x where x > 0, else slope * x;  dx = gy where x > 0, else slope * gy.

    With ``slope = 0`` this is the ReLU. The decoders use slope 0.2 after every layer but the last.
    Only the boolean mask x > 0 is kept for backward.
    """

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def _apply(self, a):
        slope = a.dtype.type(self.negative_slope)
        return get_array_module(a).where(self.positive, a, a * slope)

    def forward(self, x):
        self.positive = x > 0
        return self._apply(x)

    def backward(self, gy):
        return self._apply(gy)


def relu(x):
    """max(x, 0)."""
    return LeakyReLU(0.0)(x)


def leaky_relu(x, negative_slope=0.2):
    """x if x > 0 else negative_slope * x (the paper's decoders use 0.2)."""
    return LeakyReLU(negative_slope)(x)
