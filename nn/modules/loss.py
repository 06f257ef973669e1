"""Loss modules: ``MSELoss`` and ``L1Loss``, as PyTorch's, on nn.functional's ops."""
from .. import functional as F
from .module import Module


class MSELoss(Module):
    """mean((input - target)^2) (``reduction``: ``mean``, ``sum``, ``none``, or the paper's ``paper``)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(Module):
    """mean(|input - target|) (``reduction``: ``mean``, ``sum``, ``none``, or the paper's ``paper``)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)
