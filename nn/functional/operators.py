"""Tensor's operators and methods, installed once by ``nn.functional`` (as DeZero's
``setup_variable``): ``Tensor`` itself (nn/tensor.py) imports no op, so there is no import circle.

    a + b, a - b, a * b, a / b, -a, a ** b, a @ b, a[index], a < b, a <= b, a > b, a >= b
    a.sum/mean(dim, keepdim), a.max/min(dim, keepdim), a.argmax/argmin(dim, keepdim)
    a.view/reshape(*shape), a.flatten(start_dim, end_dim), a.squeeze(dim), a.unsqueeze(dim),
    a.permute(*dims), a.transpose(dim0, dim1), a.T, a.mT
    a.exp(), log, tanh, sigmoid, sqrt, abs, pow(b), clamp(min, max), float(), double()

Each is the function of ``nn.functional`` with the same name, with PyTorch's signature.
"""
import numpy as np

from ..tensor import Tensor
from . import arithmetic, elementwise, indexing, matrix_product, reduction, shape


def _shape_argument(new_shape):
    """``view(2, 3)`` and ``view((2, 3))`` alike."""
    if len(new_shape) == 1 and isinstance(new_shape[0], (tuple, list)):
        return tuple(new_shape[0])
    return new_shape


def _reshape(tensor, *new_shape):
    return shape.reshape(tensor, _shape_argument(new_shape))


def _reverse_dims(tensor):
    """``a.T``: a matrix's transpose; a 1-D or 0-d tensor itself.

    featinv refuses ``.T`` beyond 2 dimensions (PyTorch 2 deprecates it there): use
    ``a.permute(*reversed(range(a.ndim)))`` or ``a.mT``.
    """
    if tensor.ndim > 2:
        raise ValueError(f"Tensor.T: defined for at most 2 dimensions, got shape {tensor.shape}; use "
                         "t.mT to transpose the last two, or t.permute(*reversed(range(t.ndim)))")
    return shape.permute(tensor, tuple(reversed(range(tensor.ndim))))


def _comparison(name):
    """``a < b`` and the like: a boolean tensor without gradient (a mask for indexing)."""
    def compare(a, b):
        b = b.data if isinstance(b, Tensor) else b
        return Tensor(getattr(a.data, name)(b))
    return compare


def install():
    Tensor.__add__ = Tensor.__radd__ = lambda a, b: arithmetic.add(a, b)
    Tensor.__sub__ = lambda a, b: arithmetic.sub(a, b)
    Tensor.__rsub__ = lambda a, b: arithmetic.sub(b, a)
    Tensor.__mul__ = Tensor.__rmul__ = lambda a, b: arithmetic.mul(a, b)
    Tensor.__truediv__ = lambda a, b: arithmetic.div(a, b)
    Tensor.__rtruediv__ = lambda a, b: arithmetic.div(b, a)
    Tensor.__neg__ = lambda a: arithmetic.neg(a)
    Tensor.__pow__ = Tensor.pow = lambda a, exponent: arithmetic.pow(a, exponent)
    Tensor.__rpow__ = lambda a, base: arithmetic.pow(base, a)
    Tensor.__matmul__ = Tensor.matmul = lambda a, b: matrix_product.matmul(a, b)
    Tensor.__rmatmul__ = lambda a, b: matrix_product.matmul(b, a)
    Tensor.__getitem__ = lambda a, index: indexing.get_item(a, index)
    for name in ("__lt__", "__le__", "__gt__", "__ge__"):
        setattr(Tensor, name, _comparison(name))

    Tensor.sum = lambda a, dim=None, keepdim=False: reduction.sum(a, dim, keepdim)
    Tensor.mean = lambda a, dim=None, keepdim=False: reduction.mean(a, dim, keepdim)
    Tensor.max = lambda a, dim=None, keepdim=False: reduction.max(a, dim, keepdim)
    Tensor.min = lambda a, dim=None, keepdim=False: reduction.min(a, dim, keepdim)
    Tensor.argmax = lambda a, dim=None, keepdim=False: reduction.argmax(a, dim, keepdim)
    Tensor.argmin = lambda a, dim=None, keepdim=False: reduction.argmin(a, dim, keepdim)

    Tensor.reshape = Tensor.view = _reshape
    Tensor.flatten = lambda a, start_dim=0, end_dim=-1: shape.flatten(a, start_dim, end_dim)
    Tensor.squeeze = lambda a, dim=None: shape.squeeze(a, dim)
    Tensor.unsqueeze = lambda a, dim: shape.unsqueeze(a, dim)
    Tensor.permute = lambda a, *dims: shape.permute(a, *dims)
    Tensor.transpose = lambda a, dim0, dim1: shape.transpose(a, dim0, dim1)
    Tensor.T = property(_reverse_dims)
    Tensor.mT = property(lambda a: shape.transpose(a, -2, -1))

    Tensor.exp = lambda a: elementwise.exp(a)
    Tensor.log = lambda a: elementwise.log(a)
    Tensor.tanh = lambda a: elementwise.tanh(a)
    Tensor.sigmoid = lambda a: elementwise.sigmoid(a)
    Tensor.sqrt = lambda a: elementwise.sqrt(a)
    Tensor.abs = Tensor.__abs__ = lambda a: arithmetic.abs(a)
    Tensor.clamp = lambda a, min=None, max=None: elementwise.clamp(a, min, max)
    Tensor.float = lambda a: elementwise.cast(a, np.float32)
    Tensor.double = lambda a: elementwise.cast(a, np.float64)
