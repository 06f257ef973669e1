"""Pointwise math: exp, log, tanh, sigmoid, sqrt, clamp, and dtype casts.

Every op here maps each element on its own, so its Jacobian is diagonal and backward is an
elementwise product: dx = gy * f'(x). Where f'(x) is cheaper to write with y = f(x) (exp, tanh,
sigmoid, sqrt), backward keeps y instead of x. ``abs`` and ``pow`` live in
nn/functional/arithmetic.py.
"""
from ..function import Function
from ..backend import get_array_module


class Exp(Function):
    """y = e^x;  dx = gy * y."""

    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = ln x (x > 0; -inf at 0 and nan below, as PyTorch);  dx = gy / x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class TanhFunction(Function):
    """y = tanh x;  dx = gy * (1 - y^2)."""

    def forward(self, x):
        self.y = get_array_module(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


class SigmoidFunction(Function):
    """y = 1 / (1 + e^-x), computed from e = exp(-|x|) as 1 / (1 + e) for x >= 0 and e / (1 + e)
    below: no overflow, and full relative precision on both tails;  dx = gy * y (1 - y)."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(-xp.abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Sqrt(Function):
    """y = sqrt x;  dx = gy / (2 y) (inf at x = 0, as PyTorch)."""

    def forward(self, x):
        self.y = get_array_module(x).sqrt(x)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Clamp(Function):
    """y = min(max(x, low), high), either bound may be None;  dx = gy where low <= x <= high, else 0.

    At a bound itself the gradient passes (PyTorch's convention).
    """

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        xp = get_array_module(x)
        self.x = x
        y = x if self.low is None else xp.maximum(x, x.dtype.type(self.low))
        return y if self.high is None else xp.minimum(y, x.dtype.type(self.high))

    def backward(self, gy):
        inside = None
        if self.low is not None:
            inside = self.x >= self.low
        if self.high is not None:
            below = self.x <= self.high
            inside = below if inside is None else inside & below
        return gy * inside


class Cast(Function):
    """y = x converted to ``dtype``;  dx = gy converted back to x's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return gy.astype(self.in_dtype)


def exp(x):
    return Exp()(x)


def log(x):
    """The natural logarithm."""
    return Log()(x)


def tanh(x):
    return TanhFunction()(x)


def sigmoid(x):
    """The logistic function 1 / (1 + e^-x)."""
    return SigmoidFunction()(x)


def sqrt(x):
    return Sqrt()(x)


def clamp(x, min=None, max=None):
    """Each element limited to [min, max] (PyTorch's ``torch.clamp``; at least one bound)."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp(min, max)(x)


def cast(x, dtype):
    """x as ``dtype`` (float32, float64, ...), differentiable: the gradient comes back in x's dtype."""
    return Cast(dtype)(x)
