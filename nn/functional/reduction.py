"""Reductions: sum, mean, max, min over all elements or along dimensions, and argmax, argmin.

``dim`` is an int, a tuple of ints, or None (all dimensions); ``keepdim=True`` keeps each reduced
dimension with size 1, as PyTorch. The backward of a reduction broadcasts gy back over the
reduced dimensions: each input element gets the gradient of the output it went into, times its
share (1 for sum, 1/count for mean, 1 for the element a max or min picked, 0 for the others).
"""
from collections import namedtuple

from ..function import Function
from ..backend import get_array_module
from ..tensor import Tensor, as_tensor
from .shape import _dim

# What max(x, dim) and min(x, dim) return, as torch.return_types.max: y.values, y.indices,
# or values, indices = x.max(dim).
max_result = namedtuple("max", ["values", "indices"])
min_result = namedtuple("min", ["values", "indices"])


def _normalized_dims(dim, ndim, what):
    """``dim`` (None, int or tuple) as a sorted tuple of non-negative dimensions (shape._dim each)."""
    if dim is None:
        return tuple(range(ndim))
    dims = {_dim(d, ndim, what) for d in ((dim,) if isinstance(dim, int) else dim)}
    return tuple(sorted(dims)) if ndim else ()


def _kept_shape(shape, dims):
    """``shape`` with every dimension in ``dims`` set to 1 (keepdim's shape)."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of x over ``dims``: (..., n_d, ...) -> (..., [1], ...);  dx = gy broadcast back to x's shape."""

    def __init__(self, dims, keepdim):
        self.dims, self.keepdim = dims, keepdim

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        gy = gy.reshape(_kept_shape(self.shape, self.dims))
        return get_array_module(gy).broadcast_to(gy, self.shape).copy()


class TakeAlongDim(Function):
    """y = x[..., index[...], ...] along ``dim``: for each position of x's other dimensions, the
    element that ``index`` (x's shape with ``dim`` of size 1) names;  dx = gy at those elements,
    0 elsewhere. This is the differentiable half of max and min with a dim."""

    def __init__(self, index, dim, keepdim):
        self.index, self.dim, self.keepdim = index, dim, keepdim

    def forward(self, x):
        self.shape = x.shape
        y = get_array_module(x).take_along_axis(x, self.index, axis=self.dim)
        return y if self.keepdim else y.squeeze(self.dim)

    def backward(self, gy):
        xp = get_array_module(gy)
        along_dim = [-1 if i == self.dim else 1 for i in range(len(self.shape))]
        positions = xp.arange(self.shape[self.dim]).reshape(along_dim)
        picked = positions == self.index  # one-hot along dim
        return picked * gy.reshape(self.index.shape)


class Extreme(Function):
    """y = max (or min) of all elements;  dx = gy / k at the k elements equal to y, 0 elsewhere
    (ties share the gradient evenly, as PyTorch's full reduction)."""

    def __init__(self, largest):
        self.largest = largest

    def forward(self, x):
        self.x = x
        self.y = x.max() if self.largest else x.min()
        return self.y

    def backward(self, gy):
        hits = self.x == self.y
        return hits * (gy / hits.sum(dtype=gy.dtype))


def sum(x, dim=None, keepdim=False):
    """Sum over ``dim`` (an int, a tuple, or None: every dimension)."""
    x = as_tensor(x)
    return Sum(_normalized_dims(dim, x.ndim, "sum"), keepdim)(x)


def mean(x, dim=None, keepdim=False):
    """Mean over ``dim``: the sum divided by the number of elements summed (nan when there are none,
    as PyTorch)."""
    x = as_tensor(x)
    dims = _normalized_dims(dim, x.ndim, "mean")
    count = 1
    for d in dims:
        count *= x.shape[d]
    return sum(x, dims, keepdim) * (1.0 / count if count else float("nan"))


def _extreme(x, dim, keepdim, largest):
    result, x = (max_result if largest else min_result), as_tensor(x)
    if dim is None:
        if x.size == 0:
            raise RuntimeError(f"{result.__name__}(): expected a non-empty tensor when no dim is given")
        return Extreme(largest)(x)
    d = _normalized_dims(dim, x.ndim, "max" if largest else "min")
    if x.ndim == 0:
        return result(x, Tensor(get_array_module(x.data).zeros((), dtype="int64")))
    indices = _arg_extreme(x.data, d[0], True, largest)
    values = TakeAlongDim(indices, d[0], keepdim)(x)
    return result(values, Tensor(indices if keepdim else indices.squeeze(d[0])))


def _arg_extreme(data, dim, keepdim, largest):
    xp = get_array_module(data)
    index = (xp.argmax if largest else xp.argmin)(data, axis=dim)
    return xp.expand_dims(index, dim) if keepdim and dim is not None else index


def max(x, dim=None, keepdim=False):
    """The largest element (a 0-d tensor), or with ``dim`` (an int) a ``(values, indices)`` named
    tuple of the largest elements along ``dim`` and their positions, as ``torch.max``.

    Along ``dim`` the gradient goes to the element whose index is returned (the first of equal
    largest ones); over all elements ties share it evenly, as PyTorch.
    """
    return _extreme(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):
    """The smallest element, or ``(values, indices)`` along ``dim``: as :func:`max`."""
    return _extreme(x, dim, keepdim, False)


def argmax(x, dim=None, keepdim=False):
    """The position of the largest element (in the flattened tensor when ``dim`` is None), an
    int64 tensor without gradient."""
    return _arg(x, dim, keepdim, True)


def argmin(x, dim=None, keepdim=False):
    """The position of the smallest element: as :func:`argmax`."""
    return _arg(x, dim, keepdim, False)


def _arg(x, dim, keepdim, largest):
    data = as_tensor(x).data
    if dim is None:
        index = _arg_extreme(data.reshape(-1), 0, False, largest)
        return Tensor(index.reshape((1,) * data.ndim) if keepdim else index)
    d = _normalized_dims(dim, data.ndim, "argmax" if largest else "argmin")
    if data.ndim == 0:
        return Tensor(get_array_module(data).zeros((), dtype="int64"))
    return Tensor(_arg_extreme(data, d[0], keepdim, largest))
