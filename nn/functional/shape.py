"""Ops that move values around without changing them: reshape, flatten, squeeze, unsqueeze,
permute, transpose, concat. (Indexing is in nn/functional/indexing.py.)"""
from ..function import Function
from ..backend import get_array_module


class ReshapeFunction(Function):
    """y = x viewed with another shape;  dx = gy reshaped back."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Concat(Function):
    """y = the inputs joined along ``axis``;  each dx is its slice of gy."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        grads, start = [], 0
        for size in self.sizes:
            index = [slice(None)] * gy.ndim
            index[self.axis] = slice(start, start + size)
            grads.append(gy[tuple(index)])
            start += size
        return tuple(grads)


class Permute(Function):
    """y = x with its dimensions reordered: y.shape[i] = x.shape[dims[i]];  dx = gy with the inverse order."""

    def __init__(self, dims):
        self.dims = tuple(dims)

    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return gy.transpose(inverse)


def reshape(x, shape):
    """x with a new shape of the same size (one entry may be -1)."""
    return ReshapeFunction(shape)(x)


def _dim(d, ndim, what, argument="dim"):
    """``d`` as a non-negative dimension of a tensor with ``ndim`` dimensions (negative counts from the end).

    Out of range: a ValueError, as every error a user can fix here (PyTorch raises IndexError).
    """
    bound = ndim or 1  # a 0-d tensor accepts 0 and -1, as PyTorch
    if not -bound <= d < bound:
        raise ValueError(f"{what}: {argument} {d} outside the {ndim} dimensions of the tensor")
    return d % bound


def flatten(x, start_dim=0, end_dim=-1):
    """Dimensions start_dim..end_dim merged into one, in C order, as ``torch.flatten``:
    (d0, d1, ..., dn) -> (d0 * d1 * ... * dn,) by default; (N, C, H, W) -> (N, C*H*W) with
    start_dim=1 (what the ``Flatten`` layer does)."""
    shape = tuple(x.shape)
    if not shape:
        return reshape(x, (1,))
    start, end = _dim(start_dim, len(shape), "flatten", "start_dim"), _dim(end_dim, len(shape), "flatten", "end_dim")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {shape}")
    merged = 1
    for n in shape[start:end + 1]:
        merged *= n
    return reshape(x, shape[:start] + (merged,) + shape[end + 1:])


def squeeze(x, dim=None):
    """x without its size-1 dimensions (only ``dim``'s, an int or tuple, when given; a dimension of
    another size is left as it is, as PyTorch)."""
    shape = tuple(x.shape)
    dims = range(len(shape)) if dim is None else [_dim(d, len(shape), "squeeze")
                                                   for d in ((dim,) if isinstance(dim, int) else dim)]
    drop = {d for d in dims if len(shape) and shape[d] == 1}
    return reshape(x, tuple(n for i, n in enumerate(shape) if i not in drop))


def unsqueeze(x, dim):
    """x with a new size-1 dimension at position ``dim`` (negative: counted from the end of the result)."""
    shape = tuple(x.shape)
    d = _dim(dim, len(shape) + 1, "unsqueeze")
    return reshape(x, shape[:d] + (1,) + shape[d:])


def permute(x, *dims):
    """x with its dimensions in the order ``dims`` (each once): y.shape[i] = x.shape[dims[i]]."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    ndim = len(x.shape)
    dims = tuple(_dim(d, ndim, "permute") for d in dims)
    if sorted(dims) != list(range(ndim)):
        raise ValueError(f"permute: {dims} is not an order of the {ndim} dimensions of shape {tuple(x.shape)}")
    return Permute(dims)(x)


def transpose(x, dim0, dim1):
    """x with dimensions ``dim0`` and ``dim1`` swapped."""
    ndim = len(x.shape)
    order = list(range(ndim))
    d0, d1 = _dim(dim0, ndim, "transpose"), _dim(dim1, ndim, "transpose")
    order[d0], order[d1] = order[d1], order[d0]
    return Permute(order)(x)


def concat(xs, axis=1):
    """Join tensors along ``axis`` (channels by default: the decoders' two-stream join)."""
    if not xs:
        raise ValueError("concat: expected at least one tensor, got none")
    return Concat(axis)(*xs)
