"""Losses between an output and a target of the same shape: squared error and absolute error.

``reduction``: ``mean`` (over every element: PyTorch's default, and ours), ``sum``, ``none``
(the elementwise losses), or ``paper`` (summed over pixels, averaged over the batch: how the
paper trains, so training asks for it by name; not a PyTorch reduction).
"""
from ..backend import get_array_module
from ..function import Function
from ..fused import scaled, sum_of_squares
from .validation import check_float


class MSELossFunction(Function):
    """L = sum((x - t)^2) / d with d = N ('paper'), x.size ('mean') or 1 ('sum');
    dx = 2 (x - t) gL / d,  dt = -dx. With d None ('none'): L = (x - t)^2, dx = 2 (x - t) gL."""

    def __init__(self, divisor):
        self.divisor = divisor

    def forward(self, x, t):
        self.diff = x - t
        if self.divisor is None:
            return self.diff * self.diff
        return sum_of_squares(self.diff) / x.dtype.type(self.divisor)

    def backward(self, gy):
        if self.divisor is None:
            gx = 2 * self.diff * gy
        else:
            gx = scaled(self.diff, gy, self.diff.dtype.type(2.0 / self.divisor))
        return gx, (-gx if self.needs_input_grad[1] else None)


class L1LossFunction(Function):
    """L = sum(|x - t|) / d (d as MSELossFunction; None: the elementwise |x - t|);
    dx = sign(x - t) gL / d (0 where x = t, as PyTorch),  dt = -dx."""

    def __init__(self, divisor):
        self.divisor = divisor

    def forward(self, x, t):
        xp = get_array_module(x)
        diff = x - t
        self.sign = xp.sign(diff)
        if self.divisor is None:
            return xp.abs(diff)
        return xp.abs(diff).sum() / x.dtype.type(self.divisor)

    def backward(self, gy):
        gx = self.sign * gy if self.divisor is None else self.sign * (gy / gy.dtype.type(self.divisor))
        return gx, (-gx if self.needs_input_grad[1] else None)


REDUCTIONS = ("paper", "mean", "sum", "none")


def _divisor(op, x, target, reduction):
    """Check the pair and return the reduction's divisor (None for 'none')."""
    if tuple(x.shape) != tuple(target.shape):
        raise ValueError(f"{op}: input shape {tuple(x.shape)} differs from target shape {tuple(target.shape)}")
    check_float(op, x, target)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if x.size == 0 and reduction != "none":
        raise ValueError(f"{op}: empty input of shape {tuple(x.shape)}: no loss to average")
    if reduction == "paper" and x.ndim == 0:
        raise ValueError(f"{op}: reduction 'paper' averages over a batch axis, but the input is a scalar")
    return {"paper": lambda: x.shape[0], "mean": lambda: x.size, "sum": lambda: 1, "none": lambda: None}[reduction]()


def mse_loss(x, target, reduction="mean"):
    """Squared error between x and target (same shape; batch first for ``paper``)."""
    return MSELossFunction(_divisor("mse_loss", x, target, reduction))(x, target)


def l1_loss(x, target, reduction="mean"):
    """Absolute error between x and target (same shape)."""
    return L1LossFunction(_divisor("l1_loss", x, target, reduction))(x, target)
