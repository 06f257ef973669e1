"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """Per parameter group::

        g <- g + weight_decay * p
        buf <- g (first step),  momentum buf + (1 - dampening) g (later steps)
        p <- p - lr * (g + momentum buf if nesterov else buf)        (p - lr g without momentum)

    State per parameter: ``momentum_buffer``, as PyTorch names it.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def update(self, p, g, state, group):
        momentum = group["momentum"]
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.copy()
            else:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += g if not group["dampening"] else (1 - group["dampening"]) * g
            g = g + momentum * state["momentum_buffer"] if group["nesterov"] else state["momentum_buffer"]
        p.data -= (group["lr"] * g).astype(p.data.dtype)
