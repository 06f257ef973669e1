"""``Module``: a layer or a network: parameters, sub-modules, modes, hooks, state dicts, devices.

As in PyTorch, assigning a :class:`Parameter` or a ``Module`` to an attribute registers it;
``named_parameters()`` walks the tree in assignment order with dotted names (``convJ1.weight``),
which are also the keys of ``state_dict()`` and the paths (``convJ1/weight``) in HDF5 files.
"""
from collections import OrderedDict

import numpy as np

from .. import init
from ..backend import device_of, get_array_module, to_device, unwrap
from ..errors import WeightFileError
from ..function import Function
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that a module learns: always a leaf that requires gradients."""

    def __init__(self, data, name=None):
        super().__init__(data, requires_grad=True, name=name)


class HookHandle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class _BackwardHook(Function):
    """Identity in forward; in backward, calls ``hook(module, grad_output)`` which may replace it."""

    def __init__(self, module, hook):
        self.module, self.hook = module, hook

    def forward(self, y):
        return y

    def backward(self, gy):
        replaced = self.hook(self.module, gy)
        if replaced is None:
            return gy
        replaced = unwrap(replaced)
        if (getattr(replaced, "shape", None) != gy.shape or getattr(replaced, "dtype", None) != gy.dtype
                or device_of(replaced) != device_of(gy)):
            raise ValueError(f"backward hook of {type(self.module).__name__}: it returned "
                             f"{type(replaced).__name__} {getattr(replaced, 'shape', '')} "
                             f"{getattr(replaced, 'dtype', '')} on {device_of(replaced)}, but the gradient it replaces "
                             f"is {gy.shape} {gy.dtype} on {device_of(gy)}; return None to keep it")
        return replaced


class Module:
    """Base class of layers and networks; subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters and value is None:
            del self._parameters[name]
        elif name in self._buffers:  # assigning a registered buffer updates it
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """A state array that is not a parameter (say running statistics): saved in state_dict,
        loaded by load_state_dict, moved by .to(device), never optimised. ``self.name`` reads it."""
        if name in self._parameters or name in self._modules:
            raise ValueError(f"register_buffer: {name!r} is already a parameter or sub-module")
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        y = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, y)
            y = y if replaced is None else replaced
        for hook in list(self._backward_hooks.values()):
            y = _BackwardHook(self, hook)(y)
        return y

    # --- hooks -----------------------------------------------------------------------------
    def register_forward_hook(self, hook):
        """``hook(module, inputs, output)`` after every forward; a returned value replaces the output."""
        key = object()
        self._forward_hooks[key] = hook
        return HookHandle(self._forward_hooks, key)

    def register_backward_hook(self, hook):
        """``hook(module, grad_output)`` when the gradient of the module's output is known;
        a returned array replaces that gradient."""
        key = object()
        self._backward_hooks[key] = hook
        return HookHandle(self._backward_hooks, key)

    # --- the tree --------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, array in module._buffers.items():
                yield (f"{module_name}.{name}" if module_name else name), array

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for _, module in self.named_modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # --- state -----------------------------------------------------------------------------
    def state_dict(self):
        """``{"layer.weight": array}`` referencing (not copying) the parameters' arrays, then the
        buffers' (as PyTorch's)."""
        state = OrderedDict((name, p.data) for name, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True, source="state dict"):
        """Copy arrays into the parameters, on the parameters' device and dtype.

        Every shape must match; with ``strict`` the key sets must be equal. Errors name the
        parameter, both shapes, and the missing or unexpected keys.
        """
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        missing = sorted((set(own) | set(buffers)) - set(state))
        unexpected = sorted(set(state) - set(own) - set(buffers))
        if strict and (missing or unexpected):
            raise WeightFileError(f"{source}: does not fit {type(self).__name__}: missing {missing}, "
                             f"unexpected {unexpected}")
        for name, p in own.items():
            if name not in state:
                continue
            array = state[name]
            if tuple(array.shape) != tuple(p.shape):
                raise WeightFileError(f"{source}: parameter {name} has shape {tuple(array.shape)} "
                                 f"but the model expects {tuple(p.shape)}")
            xp = get_array_module(p.data)
            p.data = xp.asarray(to_device(array, device_of(p.data)), dtype=p.data.dtype).copy()
        for name, current in buffers.items():
            if name in state:
                owner, _, attribute = name.rpartition(".")
                module = dict(self.named_modules())[owner]
                if tuple(state[name].shape) != tuple(current.shape):
                    raise WeightFileError(f"{source}: buffer {name} has shape {tuple(state[name].shape)} but the model "
                                     f"expects {tuple(current.shape)}")
                setattr(module, attribute, get_array_module(current).asarray(
                    to_device(state[name], device_of(current)), dtype=current.dtype).copy())
        return missing, unexpected

    def to(self, device):
        """Move every parameter to ``device`` (``cpu``/``gpu``) in place; returns self."""
        for p in self.parameters():
            p.data = to_device(p.data, device)
            if p.grad is not None:
                p.grad = to_device(p.grad, device)
        for _, module in self.named_modules():
            for name, array in list(module._buffers.items()):
                setattr(module, name, to_device(array, device))
        return self

    @property
    def device(self):
        params = self.parameters()
        return device_of(params[0].data) if params else "cpu"

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")


class WeightedLayer(Module):
    """A layer with a ``weight`` fed by ``fan_in`` inputs per output and an optional ``bias``
    (nn.Conv2d, nn.ConvTranspose2d, nn.Linear): both created here and initialised by
    :meth:`reset_parameters`."""

    def __init__(self, weight_shape, fan_in, bias_size=None):
        super().__init__()
        self.fan_in = fan_in
        self.weight = Parameter(np.empty(weight_shape, np.float32))
        self.bias = Parameter(np.empty(bias_size, np.float32)) if bias_size else None
        self.reset_parameters()

    def reset_parameters(self, negative_slope=0.0):
        """He normal weights for the leaky ReLU of ``negative_slope`` that follows (0: a ReLU, 1: none),
        zero bias (nn/init.py)."""
        init.kaiming_normal_(self.weight, self.fan_in, negative_slope)
        if self.bias is not None:
            init.zeros_(self.bias)
