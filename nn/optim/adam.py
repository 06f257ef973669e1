"""Adam, exactly as ``torch.optim.Adam`` computes it (without amsgrad)."""
import math

from ..backend import get_array_module
from ..fused import adam_update
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba), per parameter group::

        g  <- g + weight_decay * p
        m  <- beta1 m + (1 - beta1) g
        v  <- beta2 v + (1 - beta2) g^2
        p  <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    t counts the updates of that parameter (PyTorch's per-parameter ``state["step"]``): a
    parameter that had no gradient on some steps is corrected for its own number of updates.
    State per parameter: ``exp_avg`` (m), ``exp_avg_sq`` (v), ``step`` (t), as PyTorch names them.
    Groups hold lr, betas, eps, weight_decay (PyTorch's amsgrad, maximize, foreach... are not offered).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not all(0.0 <= b < 1.0 for b in betas) or not eps >= 0:
            raise ValueError(f"Adam: betas {betas} must lie in [0, 1) and eps {eps} must be >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def update(self, p, g, state, group):
        xp = get_array_module(p.data)
        beta1, beta2 = group["betas"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] = t = state["step"] + 1
        dtype = p.data.dtype.type  # every constant in the parameter's dtype, rounded from float64
        adam_update(p.data, g, state["exp_avg"], state["exp_avg_sq"], dtype(beta1), dtype(1 - beta1), dtype(beta2),
                    dtype(1 - beta2), dtype(group["lr"] / (1 - beta1 ** t)), dtype(math.sqrt(1 - beta2 ** t)),
                    dtype(group["eps"]))
