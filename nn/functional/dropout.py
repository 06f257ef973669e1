"""Dropout: zero each unit with probability p in training, scale the rest by 1/(1-p)."""
from ..backend import device_of, to_device
from ..function import Function
from .validation import check_float
from .. import random


class DropoutFunction(Function):
    """y = x * m / (1 - p) with m ~ Bernoulli(1 - p) per element;  dx = gy * m / (1 - p)."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        keep = random.generator().random(x.shape, dtype="float32") >= self.p
        self.scale = to_device(keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p)), device_of(x))
        return x * self.scale

    def backward(self, gy):
        return gy * self.scale


def dropout(x, p=0.5, training=True):
    """Inverted dropout; the identity when not training or p == 0."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    check_float("dropout", x)
    if not training or p == 0:
        return x
    return DropoutFunction(p)(x)
