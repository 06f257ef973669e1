"""``Optimizer``: parameter groups, per-parameter state, and their state dicts, as ``torch.optim.Optimizer``.

An optimiser holds ``param_groups``, a list of dicts: ``{"params": [tensors], "lr": ..., ...}``,
each with its own options (the constructor's defaults fill what a group leaves out), and
``state``, a dict from each parameter to its own arrays (Adam's moments, SGD's momentum), on the
parameter's device. ``step()`` updates ``param.data`` in place from ``param.grad``.

``state_dict()`` has PyTorch's structure: ``{"state": {index: {name: array or int}},
"param_groups": [{options..., "params": [indices]}]}``, parameters numbered in group order.
"""
import math
from collections import defaultdict

from ..backend import device_of, get_array_module, to_device
from ..tensor import Tensor


class Optimizer:
    """Base class: subclasses define ``update(param, grad, state, group)``."""

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        groups = [params] if isinstance(params, Tensor) else list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for group in (groups if isinstance(groups[0], dict) else [{"params": groups}]):
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add ``{"params": ..., option: value}``; options it leaves out take the defaults."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        if not group["params"]:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one parameter group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        lr = group["lr"]
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r} (a finite number >= 0)")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients (``set_to_none=False``: fill them with zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient; ``closure`` (re-evaluating the
        loss) is called first and its value returned, as PyTorch's."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        return loss

    def update(self, param, grad, state, group):
        raise NotImplementedError

    def _indexed(self):
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self):
        """PyTorch's structure (see the module docstring); arrays are referenced, not copied."""
        index = {id(p): i for i, p in enumerate(self._indexed())}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s and id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore options and state from :meth:`state_dict`'s output (the groups must have the same
        sizes); arrays are copied onto each parameter's device and dtype."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups)):
            raise ValueError(f"optimiser state has groups of {[len(s['params']) for s in saved_groups]} parameters, "
                             f"but this optimiser's groups have {[len(g['params']) for g in self.param_groups]}")
        for saved, group in zip(saved_groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
        params = self._indexed()
        self.state = defaultdict(dict)
        for index, entries in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(params):
                raise ValueError(f"optimiser state has an entry for parameter {index}, "
                                 f"but only {len(params)} parameters are optimised")
            p = params[index]
            for name, value in entries.items():
                if name == "step":  # a count: each parameter's number of updates
                    self.state[p][name] = int(value)
                else:  # a copy: the update works in place and must not write into the caller's dict
                    self.state[p][name] = get_array_module(p.data).asarray(
                        to_device(value, device_of(p.data)), dtype=p.data.dtype).copy()
