"""Indexing ``x[index]``: ints, slices, None, ``...``, and integer or boolean arrays (tensors, lists).

Forward is NumPy's (and CuPy's) indexing. Backward sends each element of gy back to the element
of x it was read from. Basic indices (ints, slices, None, ``...``) read each element at most once,
so gy is written into zeros at ``index``. Advanced indices (arrays) may read an element several
times (``x[[0, 0, 1]]``), and then its gradients must add up: every element of x is numbered,
the same index picks the numbers of the elements read, and a weighted ``bincount`` sums gy per
number (a scatter-add, on both devices).
"""
from ..function import Function
from ..backend import get_array_module
from ..tensor import Tensor

_BASIC = (int, slice, type(None), type(Ellipsis))


class GetItem(Function):
    """y = x[index];  dx = zeros of x's shape with every element of gy added at the element it came from."""

    def __init__(self, index):
        self.index = index
        items = index if isinstance(index, tuple) else (index,)
        self.basic = all(isinstance(i, _BASIC) for i in items)

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.basic:
            gx = xp.zeros(self.in_shape, self.dtype)
            gx[self.index] = gy
            return gx
        size = 1
        for n in self.in_shape:
            size *= n
        read_from = xp.arange(size).reshape(self.in_shape)[self.index]
        gx = xp.bincount(read_from.reshape(-1), weights=gy.reshape(-1), minlength=size)
        return gx.astype(self.dtype).reshape(self.in_shape)


def _index_item(item, xp):
    """One item of an index, ready for an array of module ``xp``: tensors, lists and arrays become
    integer or boolean arrays on the indexed tensor's device."""
    if isinstance(item, _BASIC):
        return item
    if isinstance(item, Tensor):
        item = item.data
    if not hasattr(item, "dtype") and not isinstance(item, (list, tuple)):
        raise TypeError(f"index: unsupported index item {item!r}; use ints, slices, None, ... or "
                        "integer/boolean arrays")
    item = xp.asarray(item)  # a host index of a GPU tensor is copied to the GPU, as PyTorch allows
    if item.dtype.kind not in "iub":
        raise TypeError(f"index: an index array must hold integers or booleans, got {item.dtype}; "
                        "build it from integers, e.g. nn.Tensor(np.array([0, 2]))")
    return item


def get_item(x, index):
    """x[index] with NumPy's rules (PyTorch's for these index kinds), differentiable.

    Unlike PyTorch, ``nn.Tensor([0, 2])`` holds float32 values, so an index tensor is built from an
    integer array (``nn.Tensor(np.array([0, 2]))``) or given as a list.
    """
    xp = get_array_module(x)
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(_index_item(i, xp) for i in items)
    return GetItem(items if isinstance(index, tuple) or len(items) != 1 else items[0])(x)
