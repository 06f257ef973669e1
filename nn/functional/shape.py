"""Ops that move values around without changing them: reshape, flatten, concat, slicing."""
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


class GetItem(Function):
    """y = x[index] for basic indexing (ints and slices);  dx = zeros with gy written at index.

    Basic indices select each element at most once, so writing (not adding) is exact.
    """

    def __init__(self, index):
        items = index if isinstance(index, tuple) else (index,)
        if not all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items):
            raise ValueError("get_item: only ints, slices, None and ... are supported, "
                             f"got {index!r}")
        self.index = index

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        gx = get_array_module(gy).zeros(self.in_shape, self.dtype)
        gx[self.index] = gy
        return gx


def reshape(x, shape):
    """x with a new shape of the same size (one entry may be -1)."""
    return ReshapeFunction(shape)(x)


def flatten(x, start_dim=1):
    """(N, d1, d2, ...) -> (N, d1*d2*...) for start_dim=1, in C order as PyTorch and Caffe flatten."""
    shape = x.shape
    if not 0 <= start_dim < max(1, len(shape)):
        raise ValueError(f"flatten: start_dim {start_dim} outside the {len(shape)} dimensions of shape {tuple(shape)}")
    return reshape(x, tuple(shape[:start_dim]) + (-1,))


def concat(xs, axis=1):
    """Join tensors along ``axis`` (channels by default: the decoders' two-stream join)."""
    if not xs:
        raise ValueError("concat: expected at least one tensor, got none")
    return Concat(axis)(*xs)


def get_item(x, index):
    return GetItem(index)(x)
