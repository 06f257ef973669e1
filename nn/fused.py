"""Element-wise kernels fused into one GPU launch, each beside its portable twin.

An element-wise update such as Adam's is several array expressions; in NumPy each is a pass over
memory, and on the GPU each is a kernel launch of its own (a HOG decoder's Adam step alone was 364
launches). :class:`elementwise` takes ``build(xp)``, which returns the computation written with
operators and ``xp``'s ufuncs only (``sqrt``, ``where``, ``sum``), for an array module ``xp``:

* on NumPy arrays, ``build(numpy)`` runs as written: the readable reference, unchanged;
* on CuPy arrays, ``cupy.fuse`` compiles ``build(cupy)`` into one kernel. In-place operators on
  its array arguments (``m *= beta1``) write through, as a ufunc's ``out=`` does.

Both compute the same expressions in the same order and dtypes (scalars are passed in the arrays'
dtype, as ``dtype.type(value)``); ``tests/test_nn_fused.py`` compares them on every device.
"""
import numpy as np

from .backend import cupy, is_gpu_array


class elementwise:
    """``elementwise(build)(*arrays_and_scalars)``: one fused kernel on the GPU, ``build(numpy)``
    on the CPU. ``.build`` stays available to run the unfused twin on any module."""

    def __init__(self, build):
        self.build = build
        self.__name__ = build.__name__
        self.__doc__ = build.__doc__
        self.portable = build(np)
        self.fused = None

    def __call__(self, *args):
        if any(is_gpu_array(a) for a in args):
            if self.fused is None:
                self.fused = cupy().fuse(kernel_name=self.__name__)(self.build(cupy()))
            return self.fused(*args)
        return self.portable(*args)


@elementwise
def adam_update(xp):
    """In place, with t's bias corrections folded into step_size = lr / (1 - beta1^t) and
    root_correction2 = sqrt(1 - beta2^t)::

        m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
        p <- p - step_size m / (sqrt(v) / root_correction2 + eps)
    """
    def adam_update(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                    root_correction2, eps):
        m *= beta1
        m += one_minus_beta1 * grad
        v *= beta2
        v += one_minus_beta2 * (grad * grad)
        param -= step_size * (m / (xp.sqrt(v) / root_correction2 + eps))
    return adam_update


@elementwise
def leaky_relu_forward(xp):
    """y = x where x > 0, else slope x."""
    def leaky_relu_forward(x, slope):
        return xp.where(x > 0, x, x * slope)
    return leaky_relu_forward


@elementwise
def leaky_relu_backward(xp):
    """gx = gy where the saved value (x, or y when slope >= 0: same sign) > 0, else slope gy."""
    def leaky_relu_backward(saved, gy, slope):
        return xp.where(saved > 0, gy, gy * slope)
    return leaky_relu_backward


@elementwise
def sum_of_squares(xp):
    """sum(d * d) over every element (a 0-d array)."""
    def sum_of_squares(d):
        return xp.sum(d * d)
    return sum_of_squares


@elementwise
def scaled(xp):
    """a * (b * c): a's gradient scaled by an upstream scalar b and a constant c."""
    def scaled(a, b, c):
        return a * (b * c)
    return scaled


@elementwise
def scale_in_place(xp):
    """a *= c (c a 0-d array or a scalar)."""
    def scale_in_place(a, c):
        a *= c
    return scale_in_place


@elementwise
def lrn_scale(xp):
    """scale = k + (alpha / size) * (the channel-window sum of x^2)."""
    def lrn_scale(window_sum, k, alpha_over_size):
        return k + alpha_over_size * window_sum
    return lrn_scale


@elementwise
def lrn_output(xp):
    """y = x * scale^(-beta)."""
    def lrn_output(x, scale, minus_beta):
        return x * scale ** minus_beta
    return lrn_output


@elementwise
def lrn_spread_source(xp):
    """gy y / scale: what the window spreads back in LRN's backward."""
    def lrn_spread_source(gy, y, scale):
        return gy * y / scale
    return lrn_spread_source


@elementwise
def lrn_input_grad(xp):
    """gx = gy scale^(-beta) - c x spread, c = 2 alpha beta / size."""
    def lrn_input_grad(gy, scale, minus_beta, c, x, spread):
        return gy * scale ** minus_beta - c * x * spread
    return lrn_input_grad
