"""A loss-curve PNG drawn with NumPy alone (no plotting library): curves on a white canvas with
a light grid, the y axis logarithmic when the values span more than a factor of 20, and the axes'
end values written in a 3x5-pixel digit font (scaled 2x)."""
import os

import numpy as np

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]

# 3x5 glyphs, one string of 15 bits (rows top to bottom) per character.
GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    "e": "000111101110111", "+": "000010111010000", " ": "000000000000000",
}


def _draw_text(canvas, text, x, y, scale=2, colour=(0, 0, 0)):
    """Write ``text`` (digits, '.', '-', '+', 'e') with its top-left corner at (x, y)."""
    for i, char in enumerate(text):
        glyph = np.array([int(b) for b in GLYPHS.get(char, GLYPHS[" "])], bool).reshape(5, 3)
        block = np.kron(glyph, np.ones((scale, scale), bool))
        top, left = y, x + i * 4 * scale
        region = canvas[top:top + block.shape[0], left:left + block.shape[1]]
        region[block[:region.shape[0], :region.shape[1]]] = colour


def _label(value):
    return f"{value:.3g}".replace("e+0", "e").replace("e-0", "e-")


def _draw_line(canvas, x0, y0, x1, y1, colour):
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, steps)).astype(int)
    ys = np.rint(np.linspace(y0, y1, steps)).astype(int)
    for dy in (0, 1):
        canvas[np.clip(ys + dy, 0, canvas.shape[0] - 1), np.clip(xs, 0, canvas.shape[1] - 1)] = colour


def plot_curves(path, curves, width=640, height=360, margin=48):
    """``curves``: list of (steps, values) pairs, each drawn in its own colour. Returns the canvas."""
    import imageio.v3 as iio
    canvas = np.full((height, width, 3), 255, np.uint8)
    points = [(np.asarray(s, float), np.asarray(v, float)) for s, v in curves if len(s)]
    points = [(s[np.isfinite(v)], v[np.isfinite(v)]) for s, v in points]
    points = [(s, v) for s, v in points if len(s)]
    if points:
        all_s = np.concatenate([s for s, _ in points])
        all_v = np.concatenate([v for _, v in points])
        log = all_v.min() > 0 and all_v.max() / all_v.min() > 20
        transform = np.log10 if log else (lambda a: a)
        lo, hi = transform(all_v.min()), transform(all_v.max())
        hi = hi if hi > lo else lo + 1
        s_lo, s_hi = all_s.min(), max(all_s.max(), all_s.min() + 1)
        for k in range(5):
            y = margin + k * (height - 2 * margin) // 4
            canvas[y, margin:width - margin] = 225
        canvas[height - margin, margin:width - margin] = 0
        canvas[margin:height - margin, margin] = 0
        _draw_text(canvas, _label(10 ** hi if log else hi), 2, margin + 2)
        _draw_text(canvas, _label(10 ** lo if log else lo), 2, height - margin - 10)
        _draw_text(canvas, _label(s_lo), margin, height - margin + 4)
        last = _label(s_hi)
        _draw_text(canvas, last, width - margin - 8 * len(last), height - margin + 4)
        for i, (s, v) in enumerate(points):
            xs = margin + (s - s_lo) / (s_hi - s_lo) * (width - 2 * margin)
            ys = height - margin - (transform(v) - lo) / (hi - lo) * (height - 2 * margin)
            colour = COLOURS[i % len(COLOURS)]
            if len(xs) == 1:
                _draw_line(canvas, xs[0] - 2, ys[0], xs[0] + 2, ys[0], colour)
            for j in range(len(xs) - 1):
                _draw_line(canvas, xs[j], ys[j], xs[j + 1], ys[j + 1], colour)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    iio.imwrite(path, canvas)
    return canvas
