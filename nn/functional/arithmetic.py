"""Elementwise arithmetic with NumPy broadcasting (reductions are in nn/functional/reduction.py).

For ``y = f(a, b)`` with broadcasting, the gradient of an input is the elementwise gradient
summed over the axes along which that input was broadcast (:func:`sum_to`).
"""
from ..function import Function
from ..backend import get_array_module


def sum_to(g, shape):
    """Sum ``g`` over the leading and the size-1 axes so that it has ``shape`` (undoes broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if lead else g


def _as_array_like(x, other):
    """Plain Python numbers become arrays of ``other``'s dtype, so float32 stays float32."""
    if hasattr(x, "shape"):
        return x
    xp = get_array_module(other)
    return xp.asarray(x, dtype=getattr(other, "dtype", None))


class Add(Function):
    """y = a + b;  da = sum_to(gy),  db = sum_to(gy)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(Function):
    """y = a - b;  da = gy,  db = -gy (each summed to its input's shape)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(Function):
    """y = a * b;  da = gy * b,  db = gy * a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return sum_to(gy * self.b, self.a.shape), sum_to(gy * self.a, self.b.shape)


class Div(Function):
    """y = a / b;  da = gy / b,  db = -gy * a / b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        return sum_to(ga, self.a.shape), sum_to(-ga * self.a / self.b, self.b.shape)


class Neg(Function):
    """y = -x;  dx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = x^p for a constant p;  dx = gy * p * x^(p-1)."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return x ** self.exponent

    def backward(self, gy):
        return gy * self.exponent * self.x ** (self.exponent - 1)


class PowTensor(Function):
    """y = a^b elementwise, both tensors (broadcast);  da = gy b a^(b-1),  db = gy y ln a.

    db is taken as 0 where a = 0 (the limit of y ln a for b > 0, PyTorch's choice).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = a ** b
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy * self.b * self.a ** (self.b - 1), self.a.shape)
        if self.needs_input_grad[1]:
            nonzero = self.a != 0
            log_a = xp.log(xp.where(nonzero, self.a, 1))
            gb = sum_to(gy * self.y * log_a, self.b.shape)
        return ga, gb


class Abs(Function):
    """y = |x|;  dx = gy * sign(x) (0 at x = 0)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).abs(x)

    def backward(self, gy):
        return gy * get_array_module(self.x).sign(self.x)


def add(a, b):
    return Add()(_as_array_like(a, b), _as_array_like(b, a))


def sub(a, b):
    return Sub()(_as_array_like(a, b), _as_array_like(b, a))


def mul(a, b):
    return Mul()(_as_array_like(a, b), _as_array_like(b, a))


def div(a, b):
    return Div()(_as_array_like(a, b), _as_array_like(b, a))


def neg(x):
    return Neg()(x)


def pow(x, exponent):
    """x ** exponent, the exponent a constant or a tensor (then broadcast with x, as PyTorch)."""
    if hasattr(exponent, "shape"):
        return PowTensor()(_as_array_like(x, exponent), exponent)
    return Pow(exponent)(x)


def abs(x):
    return Abs()(x)
