"""Local response normalisation across channels (AlexNet's LRN), with Caffe/PyTorch semantics.

For x (N, C, H, W), a window of ``size`` channels around c (``size // 2`` before, ``(size-1) // 2``
after, zeros beyond the ends)::

    scale[c] = k + alpha / size * sum_{d in window(c)} x[d]^2
    y[c]     = x[c] * scale[c]^(-beta)

Backward, with the window's adjoint (the same sum with before/after swapped)::

    gx[c] = gy[c] scale[c]^(-beta) - (2 alpha beta / size) x[c] sum_{c': c in window(c')} gy[c'] y[c'] / scale[c']

The element-wise steps are fused kernels on the GPU (nn.fused); the window sums are size shifted adds.
"""
from ..backend import get_array_module
from ..function import Function
from ..fused import lrn_input_grad, lrn_output, lrn_scale, lrn_spread_source
from .validation import check_float, check_rank


def _channel_window_sum(a, before, after):
    """s[:, c] = sum_{d = c - before}^{c + after} a[:, d], with zeros outside 0..C-1."""
    xp = get_array_module(a)
    channels = a.shape[1]
    padded = xp.pad(a, ((0, 0), (before, after), (0, 0), (0, 0)))
    total = padded[:, 0:channels].copy()
    for shift in range(1, before + after + 1):
        total += padded[:, shift:shift + channels]
    return total


class LocalResponseNormFunction(Function):
    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.before, self.after = size // 2, (size - 1) // 2

    def forward(self, x):
        dtype = x.dtype.type
        self.x = x
        self.scale = lrn_scale(_channel_window_sum(x * x, self.before, self.after), dtype(self.k),
                               dtype(self.alpha / self.size))
        self.y = lrn_output(x, self.scale, dtype(-self.beta))
        return self.y

    def backward(self, gy):
        dtype = gy.dtype.type
        spread = _channel_window_sum(lrn_spread_source(gy, self.y, self.scale), self.after, self.before)
        return lrn_input_grad(gy, self.scale, dtype(-self.beta), dtype(2 * self.alpha * self.beta / self.size),
                              self.x, spread)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """LRN across ``size`` neighbouring channels; alpha is divided by size (Caffe, PyTorch, ONNX)."""
    check_rank("local_response_norm", "input", x, 4, "(N, C, H, W)")
    check_float("local_response_norm", x)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNormFunction(size, alpha, beta, k)(x)
