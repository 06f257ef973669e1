"""Curves as a PNG, drawn with Pillow (installed with imageio; no plotting library): a title,
labelled axes with their end values, a light grid, a legend, and a logarithmic y axis when the
values span more than a factor of 20."""
import numpy as np

from .figures import _wrap, font, save_image

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
    save_image(image, path)
    return np.asarray(image)


def plot_bars(path, labels, series, title="", xlabel="", width=760):
    """Horizontal bars, one row per label and one bar per series in that row, each series in its own
    colour (named in the legend) with its value written beside the bar; a logarithmic axis when the
    positive values span more than a factor of 20. ``series``: a list of (name, values), one value
    per label (NaN or <= 0 on a log axis: no bar). Returns the picture as an (H, W, 3) uint8 array."""
    from PIL import Image, ImageDraw
    typeface, bar, gap = font(14), 12, 10
    row = bar * len(series) + gap
    left = max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(str(t), font=typeface)) for t in labels) + 12
    title_lines = _wrap(ImageDraw.Draw(Image.new("RGB", (1, 1))), title, width - 20, font(16))
    head = 10 + 20 * len(title_lines)  # the legend starts below the title
    top, right = head + 8 + 18 * len(series), 90
    height = top + row * len(labels) + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(title_lines):
        draw.text((10, 10 + 20 * i), line, fill="black", font=font(16))
    values = np.array([v for _, vs in series for v in vs], float)
    positive = values[np.isfinite(values) & (values > 0)]
    log = len(positive) > 0 and positive.max() / positive.min() > 20
    finite = np.abs(values[np.isfinite(values)])
    if log:  # half a decade below the smallest value, so that it still shows as a bar
        lo, hi = np.log10(positive.min()) - 0.5, np.log10(positive.max())
    else:
        lo, hi = 0.0, max(float(finite.max()) if finite.size else 1.0, 1e-30)
    x0, x1 = left, width - right

    def length(v):
        if not np.isfinite(v) or (log and v <= 0):
            return None
        return (np.log10(v) - lo) / (hi - lo) * (x1 - x0) if log else abs(v) / hi * (x1 - x0)

    for s, (name, _) in enumerate(series):
        colour = COLOURS[s % len(COLOURS)]
        draw.rectangle([(x0, head + 6 + 18 * s), (x0 + 16, head + 16 + 18 * s)], fill=colour)
        draw.text((x0 + 22, head + 3 + 18 * s), name + ("  (log scale)" if log and s == 0 else ""), fill="black", font=typeface)
    for i, label in enumerate(labels):
        y = top + i * row
        draw.text((6, y + row // 2 - 12), str(label), fill="black", font=typeface)
        for s, (_, vs) in enumerate(series):
            span = length(vs[i])
            if span is not None:
                draw.rectangle([(x0, y + s * bar), (x0 + max(span, 1), y + (s + 1) * bar - 2)], fill=COLOURS[s % len(COLOURS)])
                draw.text((x0 + max(span, 1) + 4, y + s * bar - 2), _label(vs[i]), fill="black", font=font(11))
    draw.line([(x0, top - 2), (x0, height - 36)], fill="black")
    draw.text(((x0 + x1) // 2 - 40, height - 26), xlabel, fill="black", font=typeface)
    save_image(image, path)
    return np.asarray(image)
