"""Optimisers (Adam, SGD with momentum) and learning-rate schedules, with PyTorch's update rules.

Each optimiser updates ``param.data`` in place from ``param.grad`` and keeps its per-parameter
state in arrays on the parameters' device. ``state_dict()`` / ``load_state_dict()`` give that
state as plain arrays and numbers, so a checkpoint can restore a run exactly.
"""
import copy
import math

from .backend import get_array_module, to_device, device_of
from .fused import adam_update, ema_update, scale_in_place, sum_of_squares


class Optimizer:
    def __init__(self, params, lr):
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r} (a finite number >= 0)")
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        self.lr = lr
        self.step_count = 0
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.step_count += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, p.grad, state)

    def update(self, param, grad, state):
        raise NotImplementedError

    def state_dict(self):
        """``{"step": int, "lr": float, "state.<i>.<name>": array}``."""
        out = {"step": self.step_count, "lr": self.lr}
        for i, state in enumerate(self.state):
            for name, value in state.items():
                out[f"state.{i}.{name}"] = value
        return out

    def load_state_dict(self, saved):
        self.step_count, self.lr = int(saved["step"]), float(saved["lr"])
        self.state = [dict() for _ in self.params]
        for key, value in saved.items():
            if key.startswith("state."):
                _, index, name = key.split(".", 2)
                index = int(index)
                if index >= len(self.params):
                    raise ValueError(f"optimiser state has an entry for parameter {index}, "
                                     f"but only {len(self.params)} parameters are optimised")
                if getattr(value, "ndim", 0) == 0:  # a count, such as Adam's per-parameter step
                    self.state[index][name] = int(value)
                    continue
                # a copy: the update works in place and must not write into the caller's dict
                self.state[index][name] = to_device(value, device_of(self.params[index].data)).copy()


class Adam(Optimizer):
    """Adam (Kingma & Ba), exactly as ``torch.optim.Adam`` computes it::

        g  <- g + weight_decay * p
        m  <- beta1 m + (1 - beta1) g
        v  <- beta2 v + (1 - beta2) g^2
        p  <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    t counts the updates of that parameter (as PyTorch's per-parameter ``state["step"]``): a
    parameter that had no gradient on some steps is corrected for its own number of updates.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        if not all(0.0 <= b < 1.0 for b in betas) or not eps >= 0:
            raise ValueError(f"Adam: betas {betas} must lie in [0, 1) and eps {eps} must be >= 0")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def update(self, p, g, state):
        xp = get_array_module(p.data)
        beta1, beta2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if not state:
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
            state["step"] = 0
        # (a checkpoint from before per-parameter counts has none: the global count stands in)
        state["step"] = t = state.get("step", self.step_count - 1) + 1
        dtype = p.data.dtype.type  # every constant in the parameter's dtype, rounded from float64
        adam_update(p.data, g, state["m"], state["v"], dtype(beta1), dtype(1 - beta1), dtype(beta2), dtype(1 - beta2),
                    dtype(self.lr / (1 - beta1 ** t)), dtype(math.sqrt(1 - beta2 ** t)), dtype(self.eps))


class SGD(Optimizer):
    """SGD with momentum as ``torch.optim.SGD`` (dampening 0)::

        g <- g + weight_decay * p;   buf <- momentum buf + g;   p <- p - lr * (g + momentum buf if nesterov else buf)
    """

    def __init__(self, params, lr=1e-2, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            if "momentum" not in state:
                state["momentum"] = g.copy()
            else:
                state["momentum"] *= self.momentum
                state["momentum"] += g
            g = g + self.momentum * state["momentum"] if self.nesterov else state["momentum"]
        p.data -= (self.lr * g).astype(p.data.dtype)


class ExponentialMovingAverage:
    """An exponential moving average of a model's parameters (Polyak averaging), to evaluate
    and keep instead of the last weights::

        a <- decay a + (1 - decay) p        after every optimiser step

    ``module`` is a copy of ``model`` made at construction (so the average starts at the
    model's weights), updated by :meth:`update`. With decay d the average spans about
    1 / (1 - d) steps: it smooths out the noise of the last steps' updates. The rule and the
    start are those of timm's ``ModelEmaV2``; PyTorch's ``AveragedModel`` with
    ``get_ema_multi_avg_fn(decay)`` averages alike but by ``lerp``, starting at the first update.

        average = ExponentialMovingAverage(model, decay=0.999)
        ...; optimizer.step(); average.update(model)
        error = evaluate(average.module)
    """

    def __init__(self, model, decay=0.999):
        if not (isinstance(decay, float) and 0.0 < decay < 1.0):
            raise ValueError(f"ExponentialMovingAverage: decay must be a float in (0, 1), got {decay!r}")
        self.decay = decay
        self.module = copy.deepcopy(model)

    def update(self, model):
        """Move the average towards ``model``'s parameters (the same architecture, on the same device)."""
        for average, param in zip(self.module.parameters(), model.parameters()):
            dtype = average.data.dtype.type
            ema_update(average.data, param.data, dtype(self.decay), dtype(1 - self.decay))

    def state_dict(self):
        """The averaged parameters, as ``module.state_dict()``."""
        return self.module.state_dict()

    def load_state_dict(self, state, source="state dict"):
        self.module.load_state_dict(state, source=source)


class LRScheduler:
    """A schedule that sets the optimiser's lr from its count of ``step()`` calls (its state:
    the initial lr and the count); subclasses give the rate as :meth:`lr_at`."""

    def __init__(self, optimizer):
        self.optimizer, self.base_lr, self.count = optimizer, optimizer.lr, 0

    def lr_at(self, count):
        raise NotImplementedError

    def step(self):
        self.count += 1
        self.optimizer.lr = self.lr_at(self.count)

    def state_dict(self):
        return {"base_lr": self.base_lr, "count": self.count}

    def load_state_dict(self, state):
        self.base_lr, self.count = float(state["base_lr"]), int(state["count"])


class StepLR(LRScheduler):
    """lr = initial lr * gamma^(epoch // step_size); call ``step()`` once per epoch (or iteration)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, count):
        return self.base_lr * self.gamma ** (count // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial lr - eta_min) * (1 + cos(pi * t / T_max)) / 2 after t calls of
    ``step()`` (PyTorch's closed form): a smooth decay from the initial rate to ``eta_min`` at
    t = T_max, instead of StepLR's sudden drops."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, count):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * count / self.T_max)) / 2


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` when the watched value has not improved by a relative ``threshold``
    for more than ``patience`` calls of ``step(value)`` (lower is better)."""

    def __init__(self, optimizer, factor=0.1, patience=10, threshold=1e-4, min_lr=0.0):
        self.optimizer, self.factor, self.patience = optimizer, factor, patience
        self.threshold, self.min_lr = threshold, min_lr
        self.best, self.bad_steps = math.inf, 0

    def step(self, value):
        if value < self.best * (1 - self.threshold):
            self.best, self.bad_steps = value, 0
        else:
            self.bad_steps += 1
        if self.bad_steps > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.bad_steps = 0

    def state_dict(self):
        return {"best": self.best, "bad_steps": self.bad_steps}

    def load_state_dict(self, state):
        self.best, self.bad_steps = float(state["best"]), int(state["bad_steps"])


def clip_grad_norm_(parameters, max_norm):
    """Scale the gradients of ``parameters`` in place so that their joint L2 norm is at most
    ``max_norm`` (as ``torch.nn.utils.clip_grad_norm_``); returns the norm before clipping
    (an array on the parameters' device: reading it is the caller's choice).

        total = sqrt(sum_p ||g_p||^2),   g_p <- g_p * min(1, max_norm / (total + 1e-6))

    A rare huge gradient (a batch the decoder has never seen the like of) then moves the weights
    by a bounded step instead of throwing Adam's moments, and the run, off course.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    total = xp.sqrt(xp.stack([sum_of_squares(g.astype(xp.float32, copy=False)) for g in grads]).sum())
    coefficient = xp.minimum(xp.float32(1.0), xp.float32(max_norm) / (total + xp.float32(1e-6)))
    for g in grads:
        scale_in_place(g, coefficient.astype(g.dtype, copy=False))
    return total
