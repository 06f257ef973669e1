"""Containers: ``Sequential`` (layers applied one after another, named by position or by the caller)
and ``ModuleList`` (a list of registered modules, applied by the owner's forward)."""
from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """``Sequential(a, b, c)`` names its layers 0, 1, 2; ``Sequential(OrderedDict(conv1=..., ...))``
    keeps the given names (so state-dict keys read ``conv1.weight``)."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (dict, OrderedDict)):
            items = layers[0].items()
        else:
            items = ((str(i), layer) for i, layer in enumerate(layers))
        for name, layer in items:
            setattr(self, name, layer)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __getitem__(self, key):
        if isinstance(key, int):
            return list(self._modules.values())[key]
        return self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class ModuleList(Module):
    """A list whose modules are registered (their parameters are the owner's), named 0, 1, 2..."""

    def __init__(self, modules=None):
        super().__init__()
        self.extend(modules or [])

    def _index(self, index):
        if not -len(self) <= index < len(self):
            raise IndexError(f"ModuleList: index {index} out of range for {len(self)} modules")
        return str(index % len(self))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[self._index(index)]

    def __setitem__(self, index, module):
        self.add_module(self._index(index), module)

    def __delitem__(self, index):
        modules = list(self._modules.values())
        del modules[index]
        for name in list(self._modules):
            del self._modules[name]
            object.__delattr__(self, name)
        self.extend(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        del self[:]
        self.extend(modules)
