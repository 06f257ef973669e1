"""Element-wise kernels fused into one GPU launch, each beside its portable twin.

An element-wise update such as Adam's is several array expressions; in NumPy each is a pass over
memory, and on the GPU each is a kernel launch of its own (one per expression, for every parameter). :class:`elementwise` takes ``build(xp)``, which returns the computation written with
operators and ``xp``'s ufuncs only (``sqrt``, ``where``, ``sum``), for an array module ``xp``:

* on NumPy arrays, ``build(numpy)`` runs as written: the readable reference, unchanged;
* on CuPy arrays, ``cupy.fuse`` compiles ``build(cupy)`` into one kernel. In-place operators on
  its array arguments (``m *= beta1``) write through, as a ufunc's ``out=`` does.

Both compute the same expressions in the same order and dtypes (scalars are passed in the arrays'
dtype, as ``dtype.type(value)``); ``tests/nn/test_nn_fused.py`` compares them on every device.

A kernel that updates its arrays in place and makes many passes (Adam: 13) is declared with
:func:`in_place`: on the CPU it then runs over pieces of ``PIECE`` elements in turn, so that the
temporaries of one piece stay in the processor's cache and memory is read and written about once
per array instead of once per pass (element-wise, so the result is the same bit for bit).
"""
import numpy as np

from .backend import cupy, is_gpu_array

# Elements per piece (512 KiB of float32): a piece's arrays and temporaries stay in the caches, and
# pieces this large keep the Python calls per pass few (docs/results/README.md measures the choice).
PIECE = 1 << 17


class elementwise:
    """``elementwise(build)(*arrays_and_scalars)``: one fused kernel on the GPU, ``build(numpy)``
    on the CPU. ``.build`` stays available to run the unfused twin on any module."""

    def __init__(self, build, by_pieces=False):
        self.build = build
        self.__name__ = build.__name__
        self.__doc__ = build.__doc__
        self.portable = build(np)
        self.by_pieces = by_pieces
        self.fused = None

    def __call__(self, *args):
        if any(is_gpu_array(a) for a in args):
            if self.fused is None:
                self.fused = cupy().fuse(kernel_name=self.__name__)(self.build(cupy()))
            return self.fused(*args)
        if self.by_pieces:
            return _run_by_pieces(self.portable, args)
        return self.portable(*args)


def in_place(build):
    """``elementwise`` for a kernel that returns nothing and writes into its array arguments."""
    return elementwise(build, by_pieces=True)


def _run_by_pieces(kernel, args):
    """kernel(*args) on consecutive pieces of PIECE elements of every array argument (all of one
    shape and C-contiguous, so that each piece is a view that writes through); else in one go."""
    cut = [isinstance(a, np.ndarray) and a.ndim > 0 for a in args]  # 0-d arrays and scalars go whole
    arrays = [a for a, c in zip(args, cut) if c]
    if not arrays or any(a.shape != arrays[0].shape or not a.flags.c_contiguous for a in arrays):
        return kernel(*args)
    flat = [a.reshape(-1) if c else a for a, c in zip(args, cut)]
    for start in range(0, arrays[0].size, PIECE):
        kernel(*[a[start:start + PIECE] if c else a for a, c in zip(flat, cut)])


@in_place
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


@in_place
def ema_update(xp):
    """In place: average <- decay average + one_minus_decay param (an exponential moving average)."""
    def ema_update(average, param, decay, one_minus_decay):
        average *= decay
        average += one_minus_decay * param
    return ema_update


@elementwise
def relu_forward(xp):
    """y = max(x, 0)."""
    def relu_forward(x):
        return xp.maximum(x, 0)
    return relu_forward


@elementwise
def leaky_relu_forward(xp):
    """y = max(x, slope x), which is x where x > 0, else slope x, for 0 < slope <= 1 (two passes
    where the ``where`` of :func:`leaky_relu_forward_any_slope` takes about four times as long)."""
    def leaky_relu_forward(x, slope):
        return xp.maximum(x, x * slope)
    return leaky_relu_forward


@elementwise
def leaky_relu_backward(xp):
    """gx = max(sign(saved), slope) gy, which is gy where the saved value (y: x's sign) > 0, else
    slope gy, for 0 <= slope <= 1."""
    def leaky_relu_backward(saved, gy, slope):
        return xp.maximum(xp.sign(saved), slope) * gy
    return leaky_relu_backward


@elementwise
def leaky_relu_forward_any_slope(xp):
    """y = x where x > 0, else slope x (any slope)."""
    def leaky_relu_forward_any_slope(x, slope):
        return xp.where(x > 0, x, x * slope)
    return leaky_relu_forward_any_slope


@elementwise
def leaky_relu_backward_any_slope(xp):
    """gx = gy where the saved value (x) > 0, else slope gy (any slope)."""
    def leaky_relu_backward_any_slope(saved, gy, slope):
        return xp.where(saved > 0, gy, gy * slope)
    return leaky_relu_backward_any_slope


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
