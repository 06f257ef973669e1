"""The GPU's im2col (``ConvPlan.gather``): one gather from a channel-major canvas, and its adjoint.

Where kernel launches cost more than cache misses, im2col is one gather with an index table cached
per shape (3 launches whatever the kernel size), and col2im its adjoint: each pixel gathers and
sums the taps that read it (a table of at most ceil(k/s)^2 taps per pixel). The tables are built
on the host with NumPy once per shape, then copied to the device. Portable code: the CPU runs it
too (the tests force it there).
"""
import functools

import numpy as np

from ...backend import device_of, get_array_module, to_device


def _canvas_size(kernel, stride, out_size):
    """Rows (columns) that the windows cover: (O - 1) s + k."""
    return tuple((o - 1) * st + k for o, st, k in zip(out_size, stride, kernel))


def _canvas(x, padding, canvas):
    """x (N, C, H, W) -> (C, N, HC, WC), channel-major: canvas row r holds image row r - pH (zero
    where there is none; a negative padding crops)."""
    xp = get_array_module(x)
    n, c, h, w = x.shape
    out = xp.zeros((c, n) + tuple(canvas), dtype=x.dtype)
    (ph, pw), (hc, wc) = padding, canvas
    r0, r1, c0, c1 = max(0, ph), min(hc, h + ph), max(0, pw), min(wc, w + pw)
    if r0 < r1 and c0 < c1:
        out[:, :, r0:r1, c0:c1] = x[:, :, r0 - ph:r1 - ph, c0 - pw:c1 - pw].transpose(1, 0, 2, 3)
    return out


def _taps(n, canvas, kernel, stride, out_size):
    """Host arrays broadcasting to (kH, kW, N, OH, OW): the canvas row and column each window tap
    reads (i sH + u, j sW + v), and the image index n."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_size
    u, v, b, i, j = np.ix_(range(kh), range(kw), range(n), range(oh), range(ow))
    return i * sh + u, j * sw + v, b


@functools.lru_cache(maxsize=128)
def _window_index(device, n, canvas, kernel, stride, out_size):
    """(kH kW N OH OW,) positions in a (N, HC, WC) canvas of every window tap, on ``device``."""
    rows, cols, b = _taps(n, canvas, kernel, stride, out_size)
    return to_device((b * (canvas[0] * canvas[1]) + rows * canvas[1] + cols).ravel(), device)


def im2col_by_gather(x, kernel, stride, padding, out_size):
    """x (N, C, H, W) -> col (C, kH, kW, N, OH, OW) as one gather from the channel-major canvas:
    ``col[c, u, v, n, i, j] = canvas[c, n, i sH + u, j sW + v]`` (3 kernel launches)."""
    n, c = x.shape[:2]
    kernel, stride, out_size = tuple(kernel), tuple(stride), tuple(out_size)
    canvas = _canvas_size(kernel, stride, out_size)
    index = _window_index(device_of(x), n, canvas, kernel, stride, out_size)
    col = _canvas(x, padding, canvas).reshape(c, -1).take(index, axis=1)
    return col.reshape((c,) + kernel + (n,) + out_size)


@functools.lru_cache(maxsize=128)
def _pixel_taps(device, n, image_size, padding, kernel, stride, out_size):
    """(T, N H W) table, on ``device``: for each image pixel, the positions in col's flattened
    (kH kW N OH OW) axis of the window taps that read it, T = the most any pixel has; a pixel with
    fewer points its spare entries one past the end (at an appended zero)."""
    (h, w), (ph, pw) = image_size, padding
    rows, cols, b = _taps(n, _canvas_size(kernel, stride, out_size), kernel, stride, out_size)
    y, x = np.broadcast_arrays(rows - ph, cols - pw, b)[:2]
    b = np.broadcast_to(b, y.shape)
    inside = ((y >= 0) & (y < h) & (x >= 0) & (x < w)).ravel()
    pixel = ((b * h + y) * w + x).ravel()[inside]
    source = np.flatnonzero(inside)
    order = np.argsort(pixel, kind="stable")
    pixel, source = pixel[order], source[order]
    counts = np.bincount(pixel, minlength=n * h * w)
    rank = np.arange(pixel.size) - (np.cumsum(counts) - counts)[pixel]
    table = np.full((max(1, counts.max()), n * h * w), y.size, dtype=np.int64)
    table[rank, pixel] = source
    return to_device(table, device)


def col2im_by_gather(gcol, image_size, stride, padding, bias=None):
    """The adjoint of :func:`im2col_by_gather`: gcol (C, kH, kW, N, OH, OW) -> gx (N, C, H, W), each
    pixel the sum of the taps that read it, as one gather and one sum (+ bias (C,))."""
    xp = get_array_module(gcol)
    c, kh, kw, n, oh, ow = gcol.shape
    table = _pixel_taps(device_of(gcol), n, tuple(image_size), tuple(padding), (kh, kw), tuple(stride), (oh, ow))
    flat = xp.concatenate([gcol.reshape(c, -1), xp.zeros((c, 1), dtype=gcol.dtype)], axis=1)
    summed = flat.take(table, axis=1).sum(axis=1).reshape((c, n) + tuple(image_size)).transpose(1, 0, 2, 3)
    if bias is None:
        return xp.ascontiguousarray(summed)
    return xp.add(summed, bias.reshape(1, -1, 1, 1), out=xp.empty(summed.shape, dtype=summed.dtype))
