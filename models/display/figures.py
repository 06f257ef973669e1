"""Image grids a person can read: tiles of at least 128 px, a title, labelled columns and rows.

Text is drawn with Pillow (installed with imageio) in its built-in scalable font.
"""
import os

import numpy as np

from nn.serialization import atomic_write

from ..data.images import resize, to_uint8

IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # a figure's format is its file's extension
MIN_TILE = 128
FONT_SIZE = 16
PAD = 4


def font(size=FONT_SIZE):
    from PIL import ImageFont
    return ImageFont.load_default(size=size)


def _wrap(draw, text, width, typeface):
    """Split ``text`` into lines no wider than ``width`` pixels: at spaces, and inside a word that
    is wider than a line by itself (a long file name)."""
    lines, line = [], ""
    for word in str(text).split(" "):
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=typeface) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
        while draw.textlength(line, font=typeface) > width and len(line) > 1:
            cut = 1  # the longest start of the word that fits (at least one character)
            while cut < len(line) and draw.textlength(line[:cut + 1], font=typeface) <= width:
                cut += 1
            lines.append(line[:cut])
            line = line[cut:]
    return lines + [line]


def write_grid(path, rows, column_labels=None, row_labels=None, title=None, tile=None):
    """Write a grid of images to ``path`` (PNG, or JPEG for a .jpg or .jpeg name: :data:`IMAGE_FORMATS`)
    and return it as an (H, W, 3) uint8 array.

    ``rows``: a list of rows, each a list of (H, W, 3) images (float on 0..255 or uint8); every
    cell is resized to ``tile`` px (default: the largest cell, at least 128). ``column_labels``
    are written above the columns, ``row_labels`` left of the rows, ``title`` above everything.
    """
    from PIL import Image, ImageDraw
    side = tile or max(MIN_TILE, max(max(im.shape[:2]) for row in rows for im in row))
    ncols = max(len(row) for row in rows)
    typeface = font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = FONT_SIZE + 4
    label_width = 0
    if row_labels:
        label_width = min(2 * side, max(int(probe.textlength(str(t), font=typeface)) for t in row_labels) + 2 * PAD)
    grid_width = label_width + ncols * (side + PAD) + PAD
    title_lines = _wrap(probe, title, grid_width - 2 * PAD, typeface) if title else []
    header_lines = max((len(_wrap(probe, t, side, typeface)) for t in column_labels), default=0) if column_labels else 0
    top = PAD + line_height * (len(title_lines) + header_lines)
    height = top + len(rows) * (side + PAD) + PAD
    image = Image.new("RGB", (grid_width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(title_lines):
        draw.text((PAD, PAD + i * line_height), line, fill="black", font=typeface)
    y_labels = PAD + line_height * len(title_lines)
    for c, label in enumerate(column_labels or []):
        for i, line in enumerate(_wrap(probe, label, side, typeface)):
            draw.text((label_width + PAD + c * (side + PAD), y_labels + i * line_height), line, fill="black",
                      font=typeface)
    for r, row in enumerate(rows):
        y = top + r * (side + PAD)
        if row_labels:
            for i, line in enumerate(_wrap(probe, row_labels[r], label_width - 2 * PAD, typeface)):
                draw.text((PAD, y + i * line_height), line, fill="black", font=typeface)
        for c, cell in enumerate(row):
            cell = resize(to_uint8(cell), side, side)
            image.paste(Image.fromarray(cell), (label_width + PAD + c * (side + PAD), y))
    save_image(image, path)
    return np.asarray(image)


def save_image(image, path):
    """Write the Pillow ``image`` to ``path`` atomically in the format its extension names
    (:data:`IMAGE_FORMATS`; JPEG at quality 95, which keeps the labels sharp)."""
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in IMAGE_FORMATS:
        raise ValueError(f"{path}: unknown image extension {extension!r}; name a {', '.join(IMAGE_FORMATS)} file")
    options = {"quality": 95} if IMAGE_FORMATS[extension] == "JPEG" else {}
    atomic_write(path, lambda tmp: image.save(tmp, format=IMAGE_FORMATS[extension], **options))


def write_reconstruction_figure(path, targets, reconstructions, title, extra=None, row_labels=None):
    """Columns: the photo, the decoder's reconstruction, then ``extra`` ({label: images}), one row per photo."""
    extra = extra or {}
    columns = [targets, reconstructions, *extra.values()]
    rows = [[column[i] for column in columns] for i in range(len(targets))]
    return write_grid(path, rows, ["photo", "decoder", *extra], row_labels=row_labels, title=title)
