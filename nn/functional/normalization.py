"""Normalisation: local response normalisation across channels (AlexNet's LRN, with Caffe/PyTorch
semantics), and batch normalisation.

LRN:
For x (N, C, H, W), a window of ``size`` channels around c (``size // 2`` before, ``(size-1) // 2``
after, zeros beyond the ends)::

    scale[c] = k + alpha / size * sum_{d in window(c)} x[d]^2
    y[c]     = x[c] * scale[c]^(-beta)

Backward, with the window's adjoint (the same sum with before/after swapped)::

    gx[c] = gy[c] scale[c]^(-beta) - (2 alpha beta / size) x[c] sum_{c': c in window(c')} gy[c'] y[c'] / scale[c']

The element-wise steps are fused kernels on the GPU (nn.fused); the window sums are size shifted adds.
"""
from ..backend import get_array_module, unwrap
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


class BatchNormFunction(Function):
    """Batch normalisation of x (N, C, ...) per channel c, over the axes A = (0, 2, 3, ...) of m
    elements, with weight w and bias b (C,) (each optional)::

        training:  mu = mean_A(x),  var = mean_A((x - mu)^2)  (biased)
        eval:      mu, var = the running statistics
        xhat = (x - mu) / sqrt(var + eps),   y = w xhat + b

    Backward, with gxhat = w gy::

        gw = sum_A(gy xhat),   gb = sum_A(gy)
        training:  gx = (gxhat - mean_A(gxhat) - xhat mean_A(gxhat xhat)) / sqrt(var + eps)
        eval:      gx = gxhat / sqrt(var + eps)

    (in training mu and var depend on x: the two subtracted means are their contributions).
    """

    def __init__(self, mean, var, training, momentum, eps, has_weight, has_bias):
        self.mean, self.var, self.training, self.momentum, self.eps = mean, var, training, momentum, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *affine):
        xp = get_array_module(x)
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        if self.training:
            mean = x.mean(axis=self.axes, keepdims=True)
            centred = x - mean
            var = (centred ** 2).mean(axis=self.axes, keepdims=True)
            count = x.size // x.shape[1]
            for running, batch in ((self.mean, mean), (self.var, var * (count / (count - 1)))):
                if running is not None:  # updated in place, as PyTorch's buffers
                    running *= 1 - self.momentum
                    running += (self.momentum * batch.reshape(-1)).astype(running.dtype)
        else:
            mean = self.mean.astype(x.dtype).reshape(self.shape)
            var = self.var.astype(x.dtype).reshape(self.shape)
            centred = x - mean
        self.inv_std = 1 / xp.sqrt(var + x.dtype.type(self.eps))
        self.xhat = centred * self.inv_std
        self.weight = affine[0].reshape(self.shape) if self.has_weight else None
        y = self.xhat if self.weight is None else self.xhat * self.weight
        return y + affine[-1].reshape(self.shape) if self.has_bias else y

    def backward(self, gy):
        gxhat = gy if self.weight is None else gy * self.weight
        if self.training:
            gx = (gxhat - gxhat.mean(axis=self.axes, keepdims=True)
                  - self.xhat * (gxhat * self.xhat).mean(axis=self.axes, keepdims=True)) * self.inv_std
        else:
            gx = gxhat * self.inv_std
        grads = [gx]
        if self.has_weight:
            grads.append((gy * self.xhat).sum(axis=self.axes))
        if self.has_bias:
            grads.append(gy.sum(axis=self.axes))
        return tuple(grads)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation of ``input`` (N, C, ...) per channel (:class:`BatchNormFunction`).

    In training the batch's statistics normalise, and running statistics that are given are
    updated in place: ``running <- (1 - momentum) running + momentum batch``, with the unbiased
    variance (var m / (m - 1)). Otherwise the running statistics normalise.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...), got shape {tuple(input.shape)}")
    check_float("batch_norm", input, weight, bias)
    channels = input.shape[1]
    for name, array in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        if array is not None and tuple(array.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},) for {channels} channels, "
                             f"got {tuple(array.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: outside training the running statistics are needed; pass "
                         "running_mean and running_var, or training=True")
    count = input.size // channels
    if training and count < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, got input of shape "
                         f"{tuple(input.shape)}")
    return BatchNormFunction(unwrap(running_mean), unwrap(running_var), training, momentum, eps, weight is not None,
                             bias is not None)(input, *[a for a in (weight, bias) if a is not None])
