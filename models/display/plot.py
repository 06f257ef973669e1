"""Curves as a PNG, drawn with Pillow (installed with imageio; no plotting library): a title,
labelled axes with their end values, a light grid, a legend, and a logarithmic y axis when the
values span more than a factor of 20."""
import numpy as np

from nn.serialization import atomic_write

from .figures import font

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def _label(value):
    return f"{value:.3g}"


def plot_curves(path, curves, title="", xlabel="step", ylabel="", width=720, height=420):
    """``curves``: a list of (name, steps, values), each drawn in its own colour and named in the
    legend. Returns the picture as an (H, W, 3) uint8 array."""
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    typeface = font(14)
    left, right, top, bottom = 70, 20, 40, 50
    draw.text((left, 10), title, fill="black", font=font(16))
    points = []
    for name, s, v in curves:
        s, v = np.asarray(s, float), np.asarray(v, float)
        keep = np.isfinite(v)
        if keep.any():
            points.append((name, s[keep], v[keep]))
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    draw.line([(x0, y0), (x0, y1), (x1, y1)], fill="black")
    draw.text(((x0 + x1) // 2 - 20, height - 22), xlabel, fill="black", font=typeface)
    label = Image.new("RGB", (y1 - y0, 18), "white")
    ImageDraw.Draw(label).text((0, 0), ylabel, fill="black", font=typeface)
    image.paste(label.rotate(90, expand=True), (4, y0))
    if points:
        all_s = np.concatenate([s for _, s, _ in points])
        all_v = np.concatenate([v for _, _, v in points])
        log = all_v.min() > 0 and all_v.max() / all_v.min() > 20
        transform = np.log10 if log else (lambda a: a)
        lo, hi = transform(all_v.min()), transform(all_v.max())
        lo, hi = (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)
        s_lo, s_hi = all_s.min(), max(all_s.max(), all_s.min() + 1)
        for k in range(5):
            y = y0 + k * (y1 - y0) // 4
            draw.line([(x0 + 1, y), (x1, y)], fill=(225, 225, 225))
            value = hi - k * (hi - lo) / 4
            draw.text((22, y - 8), _label(10 ** value if log else value), fill="black", font=typeface)
        draw.text((x0, y1 + 4), _label(s_lo), fill="black", font=typeface)
        draw.text((x1 - 40, y1 + 4), _label(s_hi), fill="black", font=typeface)
        for i, (name, s, v) in enumerate(points):
            colour = COLOURS[i % len(COLOURS)]
            xs = x0 + (s - s_lo) / (s_hi - s_lo) * (x1 - x0)
            ys = y1 - (transform(v) - lo) / (hi - lo) * (y1 - y0)
            if len(xs) == 1:
                draw.line([(xs[0] - 3, ys[0]), (xs[0] + 3, ys[0])], fill=colour, width=2)
            else:
                draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=2)
            draw.line([(x1 - 190, y0 + 10 + 18 * i), (x1 - 170, y0 + 10 + 18 * i)], fill=colour, width=3)
            draw.text((x1 - 164, y0 + 2 + 18 * i), f"{name} {v[-1]:.3g}" if len(points) > 1 else name,
                      fill="black", font=typeface)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return np.asarray(image)
