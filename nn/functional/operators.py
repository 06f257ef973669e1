"""Tensor's operators and methods, installed once by ``nn.functional`` (as DeZero's
``setup_variable``): ``Tensor`` itself (nn/tensor.py) imports no op, so there is no import circle.

    a + b, a - b, a * b, a / b, -a, a ** p, a[index]   ->  add, sub, mul, div, neg, pow, get_item
    a.sum(axis), a.mean(axis), a.reshape(shape), a.flatten(start_dim)
"""
from ..tensor import Tensor
from . import arithmetic, shape


def _reshape(tensor, *new_shape):
    if len(new_shape) == 1 and isinstance(new_shape[0], (tuple, list)):
        new_shape = tuple(new_shape[0])
    return shape.reshape(tensor, new_shape)


def install():
    Tensor.__add__ = Tensor.__radd__ = lambda a, b: arithmetic.add(a, b)
    Tensor.__sub__ = lambda a, b: arithmetic.sub(a, b)
    Tensor.__rsub__ = lambda a, b: arithmetic.sub(b, a)
    Tensor.__mul__ = Tensor.__rmul__ = lambda a, b: arithmetic.mul(a, b)
    Tensor.__truediv__ = lambda a, b: arithmetic.div(a, b)
    Tensor.__rtruediv__ = lambda a, b: arithmetic.div(b, a)
    Tensor.__neg__ = lambda a: arithmetic.neg(a)
    Tensor.__pow__ = lambda a, exponent: arithmetic.pow(a, exponent)
    Tensor.__getitem__ = lambda a, index: shape.get_item(a, index)
    Tensor.sum = lambda a, axis=None, keepdims=False: arithmetic.sum(a, axis, keepdims)
    Tensor.mean = lambda a, axis=None, keepdims=False: arithmetic.mean(a, axis, keepdims)
    Tensor.reshape = _reshape
    Tensor.flatten = lambda a, start_dim=1: shape.flatten(a, start_dim)
