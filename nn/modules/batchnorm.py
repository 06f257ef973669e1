"""``BatchNorm2d``: batch normalisation of (N, C, H, W) with running statistics, as PyTorch's."""
import numpy as np

from .. import functional as F
from ..functional.validation import check_rank
from .module import Module, Parameter


class BatchNorm2d(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel (F.batch_norm).

    In training mode (``module.train()``) the batch's statistics normalise and update the
    buffers ``running_mean`` and ``running_var`` (``momentum``; None: their cumulative average
    over ``num_batches_tracked`` batches); in eval mode the running statistics normalise.
    ``affine``: learn weight (ones) and bias (zeros); ``track_running_stats=False``: no buffers,
    the batch's statistics in both modes.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, np.float32))
            self.register_buffer("running_var", np.ones(num_features, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x):
        check_rank("BatchNorm2d", "input", x, 4, "(N, C, H, W)")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1  # in place, on the buffer's device
            if self.momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or not self.track_running_stats, momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
