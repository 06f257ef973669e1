"""``Sequential``: layers applied one after another, named by position or by the caller."""
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
