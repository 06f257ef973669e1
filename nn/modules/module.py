"""``Module``: a layer or a network: parameters, sub-modules, modes, hooks, state dicts, devices.

As in PyTorch, assigning a :class:`Parameter` or a ``Module`` to an attribute registers it;
``named_parameters()`` walks the tree in assignment order with dotted names (``convJ1.weight``),
which are also the keys of ``state_dict()`` and the paths (``convJ1/weight``) in HDF5 files.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import init
from ..backend import check_device, device_of, get_array_module, to_device, unwrap
from ..errors import WeightFileError
from ..function import Function
from ..tensor import RemovableHandle, Tensor, is_grad_enabled


class Parameter(Tensor):
    """A tensor that a module learns: always a leaf that requires gradients."""

    def __init__(self, data, name=None):
        super().__init__(data, requires_grad=True, name=name)


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: the keys it expected but did not get, and the others."""


def _check_replacement(module, what, replaced, expected):
    """A gradient a hook returned must have the shape, dtype and device of the one it replaces."""
    replaced = unwrap(replaced)
    if (getattr(replaced, "shape", None) != expected.shape or getattr(replaced, "dtype", None) != expected.dtype
            or device_of(replaced) != device_of(expected)):
        raise ValueError(f"backward hook of {type(module).__name__}: it returned {type(replaced).__name__} "
                         f"{getattr(replaced, 'shape', '')} {getattr(replaced, 'dtype', '')} on {device_of(replaced)}, "
                         f"but the {what} it replaces is {expected.shape} {expected.dtype} on {device_of(expected)}; "
                         "return None to keep it")
    return replaced


class _FullBackwardHooks:
    """The full backward hooks of one call of a module, as PyTorch's: ``hook(module, grad_input,
    grad_output)`` once the gradients of the module's tensor arguments are known.

    Two identity ops bracket the call: one on the output records ``grad_output``; one on the
    arguments that require gradients receives ``grad_input``, calls the hooks (which may return
    a replacement ``grad_input``) and passes the result on. When no argument requires gradients,
    the hooks are called at the output with ``grad_input`` all None."""

    def __init__(self, module, args):
        self.module, self.args = module, args
        self.grad_output = None

    def wrap_inputs(self, args):
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not positions:
            return args
        wrapped = _HookedInputs(self, positions)(*[args[i] for i in positions])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        args = list(args)
        for i, tensor in zip(positions, wrapped):
            args[i] = tensor
        self.positions = positions
        return tuple(args)

    def call_hooks(self, grad_input):
        for hook in list(self.module._backward_hooks.values()):
            replaced = hook(self.module, grad_input, self.grad_output)
            if replaced is not None:
                replaced = tuple(replaced) if isinstance(replaced, (tuple, list)) else (replaced,)
                if len(replaced) != len(grad_input):
                    raise ValueError(f"backward hook of {type(self.module).__name__}: it returned {len(replaced)} "
                                     f"gradients for the {len(grad_input)} inputs")
                grad_input = tuple(None if g is None else _check_replacement(self.module, "grad_input", r, g)
                                   for r, g in zip(replaced, grad_input))
        return grad_input


class _HookedInputs(Function):
    """Identity on the module's arguments that require gradients; its backward runs the hooks."""

    def __init__(self, hooks, positions):
        self.hooks, self.positions = hooks, positions

    def forward(self, *xs):
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gxs):
        grad_input = [None] * len(self.hooks.args)
        for i, g in zip(self.positions, gxs):
            grad_input[i] = g
        grad_input = self.hooks.call_hooks(tuple(grad_input))
        return tuple(grad_input[i] for i in self.positions)


class _HookedOutput(Function):
    """Identity on the module's output; its backward records ``grad_output``."""

    def __init__(self, hooks, inputs_hooked):
        self.hooks, self.inputs_hooked = hooks, inputs_hooked

    def forward(self, y):
        return y

    def backward(self, gy):
        self.hooks.grad_output = (gy,)
        if not self.inputs_hooked:
            self.hooks.call_hooks((None,) * len(self.hooks.args))
        return gy


def _is_dtype_name(name):
    try:
        np.dtype(name)
    except TypeError:
        return False
    return True


class Module:
    """Base class of layers and networks; subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
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

    def add_module(self, name, module):
        """Register ``module`` (or None) as the sub-module ``name``, as ``self.name = module``."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"add_module: the name must be a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        if hasattr(self, name) and name not in self._modules:
            raise ValueError(f"add_module: {name!r} is already an attribute of {type(self).__name__}")
        self._modules[name] = module
        object.__setattr__(self, name, module)

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
        for hook in list(self._forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        hooks = _FullBackwardHooks(self, args) if self._backward_hooks and is_grad_enabled() else None
        if hooks is not None:
            args = hooks.wrap_inputs(args)
        y = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, args, y)
            y = y if replaced is None else replaced
        if hooks is not None and isinstance(y, Tensor) and y.requires_grad:
            y = _HookedOutput(hooks, hasattr(hooks, "positions"))(y)
        return y

    # --- hooks -----------------------------------------------------------------------------
    def _add_hook(self, hooks, hook):
        key = object()
        hooks[key] = hook
        return RemovableHandle(hooks, key)

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` before every forward; a returned value (a tuple, or one value)
        replaces the positional arguments."""
        return self._add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` after every forward; a returned value replaces the output."""
        return self._add_hook(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook):
        """``hook(module, grad_input, grad_output)`` in backward, once the gradients with respect
        to the module's positional arguments are known: tuples of arrays (None for an argument
        that is not a tensor requiring gradients). A returned tuple replaces ``grad_input``.
        Only a single-tensor output is hooked."""
        return self._add_hook(self._backward_hooks, hook)

    # --- the tree --------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """``(dotted name, module)`` for this module ("") and every module below it, depth first."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module (children first), then on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def named_parameters(self, prefix="", recurse=True):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        seen = set()
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse=True):
        """A list (PyTorch returns a generator; a list can also be indexed and added to)."""
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, array in module._buffers.items():
                if array is not None:
                    yield (f"{module_name}.{name}" if module_name else name), array

    def buffers(self, recurse=True):
        for _, array in self.named_buffers(recurse=recurse):
            yield array

    def zero_grad(self, set_to_none=True):
        """Forget the parameters' gradients (``set_to_none=False``: fill them with zeros in place)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def requires_grad_(self, requires_grad=True):
        """Whether backward computes the parameters' gradients (False: a frozen module); returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # --- state -----------------------------------------------------------------------------
    def state_dict(self):
        """``{"layer.weight": array}`` referencing (not copying) the parameters' arrays, then the
        buffers' (PyTorch's order; arrays where PyTorch has tensors)."""
        state = OrderedDict((name, p.data) for name, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state_dict, strict=True, source=None):
        """Copy arrays into the parameters and buffers, on their device and dtype; returns
        ``(missing_keys, unexpected_keys)``.

        Every shape must match; with ``strict`` the key sets must be equal. Errors name ``source``
        (the file of :func:`nn.load`'s dict by default), the parameter and both shapes, or the
        missing and unexpected keys. A ValueError where PyTorch raises RuntimeError.
        """
        source = source or getattr(state_dict, "source", None) or "state dict"
        own = self.state_dict()
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        if strict and (missing or unexpected):
            raise WeightFileError(f"{source}: does not fit {type(self).__name__}: missing {missing}, "
                             f"unexpected {unexpected}")
        parameters, modules = dict(self.named_parameters()), dict(self.named_modules())
        for name, current in own.items():
            if name not in state_dict:
                continue
            array = state_dict[name]
            kind = "parameter" if name in parameters else "buffer"
            if tuple(array.shape) != tuple(current.shape):
                raise WeightFileError(f"{source}: {kind} {name} has shape {tuple(array.shape)} "
                                 f"but the model expects {tuple(current.shape)}")
            copied = get_array_module(current).asarray(to_device(unwrap(array), device_of(current)),
                                                       dtype=current.dtype).copy()
            if kind == "parameter":
                parameters[name].data = copied
            else:
                owner, _, attribute = name.rpartition(".")
                setattr(modules[owner], attribute, copied)
        return IncompatibleKeys(missing, unexpected)

    # --- devices and dtypes ----------------------------------------------------------------
    def _apply(self, convert):
        """Replace every parameter's array, its gradient and every floating buffer by ``convert(array)``
        (an integer buffer such as a batch count only changes device: ``convert(array, False)``)."""
        for p in self.parameters():
            p.data = convert(p.data, True)
            if p.grad is not None:
                p.grad = convert(p.grad, True)
        for module in self.modules():
            for name, array in list(module._buffers.items()):
                if array is not None:
                    setattr(module, name, convert(array, array.dtype.kind == "f"))
        return self

    def to(self, *args, **kwargs):
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``, in place; returns self.

        device: ``"cpu"``, ``"gpu"`` or its alias ``"cuda"``; dtype: a NumPy floating type
        (``np.float64``) for the parameters and floating buffers, as PyTorch's ``torch.float64``."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        if kwargs or len(args) > 2:
            raise TypeError(f"Module.to: expected to(device), to(dtype) or to(device, dtype), got {args} {kwargs}")
        for arg in args:
            if isinstance(arg, str) and not _is_dtype_name(arg):
                device = arg
            else:
                dtype = arg
        if device is not None:
            check_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"Module.to: only floating dtypes are allowed, got {dtype}")

        def convert(array, floating):
            if device is not None:
                array = to_device(array, device)
            if dtype is not None and floating and array.dtype != dtype:
                array = array.astype(dtype)
            return array
        return self._apply(convert)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("gpu")

    def float(self):
        """Parameters and floating buffers to float32; returns self."""
        return self.to(np.float32)

    def double(self):
        """Parameters and floating buffers to float64; returns self."""
        return self.to(np.float64)

    @property
    def device(self):
        params = self.parameters()
        return device_of(params[0].data) if params else "cpu"

    def extra_repr(self):
        return ""

    def __repr__(self):
        """PyTorch's layout: ``Name(extra)``, or the extra lines and ``(child): repr`` lines indented."""
        extra = self.extra_repr().split("\n") if self.extra_repr() else []
        children = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        if len(extra) == 1 and not children:
            return f"{type(self).__name__}({extra[0]})"
        lines = extra + children
        return f"{type(self).__name__}(" + ("\n  " + "\n  ".join(lines) + "\n" if lines else "") + ")"


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
