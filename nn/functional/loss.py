"""The reconstruction loss: squared Euclidean distance between images."""
from ..function import Function
from ..fused import scaled, sum_of_squares
from .validation import check_float


class MSELoss(Function):
    """L = sum((x - t)^2) / d with d = N ('paper'), x.size ('mean') or 1 ('sum');
    dx = 2 (x - t) gL / d,  dt = -dx."""

    def __init__(self, divisor):
        self.divisor = divisor

    def forward(self, x, t):
        self.diff = x - t
        return sum_of_squares(self.diff) / x.dtype.type(self.divisor)

    def backward(self, gy):
        gx = scaled(self.diff, gy, self.diff.dtype.type(2.0 / self.divisor))
        return gx, (-gx if self.needs_input_grad[1] else None)


REDUCTIONS = ("paper", "mean", "sum")


def mse_loss(x, target, reduction="mean"):
    """Squared error between x and target (same shape, batch first).

    reduction: ``mean`` (averaged over every element: PyTorch's default, and ours), ``paper``
    (summed over pixels, averaged over the batch: how the paper trains, so training asks for it
    by name) or ``sum``.
    """
    if tuple(x.shape) != tuple(target.shape):
        raise ValueError(f"mse_loss: input shape {tuple(x.shape)} differs from target shape {tuple(target.shape)}")
    check_float("mse_loss", x, target)
    if x.size == 0:
        raise ValueError(f"mse_loss: empty input of shape {tuple(x.shape)}: no loss to average")
    if reduction not in REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    divisor = {"paper": x.shape[0], "mean": x.size, "sum": 1}[reduction]
    return MSELoss(divisor)(x, target)
