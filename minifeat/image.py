"""Input conventions shared by every feature, and the pixel-to-cell geometry HOG and LBP share.

Images are row-major NumPy arrays: (H, W) grey or (H, W, 3) colour (an (H, W, 1) array counts
as grey). Values are taken as they are, on the 0..255 scale:

- integer images (uint8 and other integer types) become float32 with unchanged values 0..255;
- float images are taken as already on the 0..255 scale (they are *not* rescaled from 0..1).

This is the paper's setting: VLFeat called on float images holding 0..255 values (Caffe data
are 0..255). The scale matters: HOG's block normalisation adds a constant 1e-4 to the block
energies, so HOG of ``image / 255`` is not HOG of ``image``.

Greyscale is the ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` (PIL's "L" mode; MATLAB's
``rgb2gray`` uses these weights to 4 digits), kept in float32 without rounding to integers; the
paper computes all shallow features on the greyscale image. (Which conversion and rounding the
authors applied is not recorded: this is a decision of the project.)

Cell geometry (VLFeat's ``vl/hog.c`` and ``vl/lbp.c``): pixel ``x`` lies at position
``u = (x + 0.5) / cell_size - 0.5`` in cell units, so that a cell's centre has an integer position.
A pixel votes for the cell centres ``floor(u)`` and ``floor(u) + 1`` with weights ``1 - frac(u)``
and ``frac(u)``; in 2-D the vote is the product of the row and column weights (bilinear), and
votes for cells outside the grid are dropped.
"""
import functools

import numpy as np

CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (down, right): a pixel's four nearest cell centres
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def as_float_image(image, caller, min_side):
    """Validate ``image`` and return it as float32 (H, W) or (H, W, 3), values unchanged.

    ``caller`` names the public function in error messages; ``min_side`` is the smallest
    height and width the caller can compute a feature on. Raises ValueError on empty,
    too small, wrong-rank, wrong-channel-count, non-numeric or NaN/inf-containing input.
    """
    array = np.asarray(image)
    shape = array.shape
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{caller}: expected an integer or float image, got dtype {array.dtype} "
                         f"with shape {shape}")
    if array.ndim not in (2, 3):
        raise ValueError(f"{caller}: expected an image of shape (H, W) or (H, W, 3), "
                         f"got shape {shape}")
    if array.ndim == 3:
        if shape[2] not in (1, 3):
            raise ValueError(f"{caller}: expected 1 or 3 channels in an (H, W, C) image, "
                             f"got shape {shape}")
        if shape[2] == 1:
            array = array[:, :, 0]
    if min(shape[:2]) < min_side:
        raise ValueError(f"{caller}: image of shape {shape} is too small: height and width must "
                         f"be at least {min_side} pixels")
    pixels = array.astype(np.float32)
    if not np.isfinite(pixels).all():
        raise ValueError(f"{caller}: image of shape {shape} contains NaN or infinite values")
    return pixels


def to_grey(pixels):
    """Luma of a float32 (H, W, 3) image as float32 (H, W); a grey (H, W) image is returned as is.

    Computed channel by channel in float32 (no BLAS), so that it is bit-identical on every CPU.
    """
    if pixels.ndim == 2:
        return pixels
    red, green, blue = (pixels[:, :, channel] for channel in range(3))
    return red * LUMA_WEIGHTS[0] + green * LUMA_WEIGHTS[1] + blue * LUMA_WEIGHTS[2]


def as_grey_float(image, caller, min_side):
    """:func:`as_float_image` followed by :func:`to_grey`: a validated float32 (H, W) image."""
    return to_grey(as_float_image(image, caller, min_side))


def check_positive_int(value, name, caller):
    """Raise ValueError unless ``value`` is a positive integer (a parameter such as a cell size)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{caller}: {name} must be a positive integer, got {value!r}")


def _cell_positions(num_interior, cell_size, num_cells):
    """For the interior pixels 1 .. num_interior along one axis: the cell centre at or before
    each pixel (-1 before the first centre; clipped to ``num_cells``, which is off the grid
    like everything beyond it) and the weight ``frac(u)`` of the next centre."""
    pixel = np.arange(1, num_interior + 1)
    position = ((pixel + 0.5) / cell_size - 0.5).astype(np.float32)
    cell_before = np.floor(position)
    next_weight = position - cell_before
    return np.minimum(cell_before.astype(np.intp), num_cells), next_weight.astype(np.float64)


@functools.lru_cache(maxsize=16)
def cell_geometry(interior_shape, cell_size, grid_shape):
    """Where each interior pixel votes: depends on sizes only, so it is computed once per size.

    Returns read-only arrays over the (H - 2, W - 2) interior pixels: the slot of the cell
    centre above-left of each pixel in the grid (cells_down + 2, cells_across + 2) padded by one
    cell on each side, and for each of the four ``CORNERS`` the bilinear weight of that corner.
    """
    row_cell, row_next_weight = _cell_positions(interior_shape[0], cell_size, grid_shape[0])
    col_cell, col_next_weight = _cell_positions(interior_shape[1], cell_size, grid_shape[1])
    cell_slot = np.add.outer((row_cell + 1) * (grid_shape[1] + 2), col_cell + 1)
    row_weights = (1 - row_next_weight, row_next_weight)
    col_weights = (1 - col_next_weight, col_next_weight)
    corner_weights = [np.multiply.outer(row_weights[down], col_weights[right])
                      for down, right in CORNERS]
    for array in (cell_slot, *corner_weights):
        array.flags.writeable = False
    return cell_slot, corner_weights


def bilinear_cell_histograms(bins, values, num_bins, cell_size, grid_shape):
    """Histograms of the interior pixels' ``bins``, bilinearly spread over a grid of cells.

    ``bins`` (integer) has shape (H - 2, W - 2): the pixels (y, x) with 1 <= y <= H - 2 and
    1 <= x <= W - 2 of an (H, W) image, the ones HOG and LBP look at; ``values`` (the vote of
    each pixel) is an array of that shape, or None for votes of 1. Returns float32
    (cells_down, cells_across, num_bins) with

        h[cy, cx, b] = sum over pixels with bins == b of values * w_row(y, cy) * w_col(x, cx)

    where w_row and w_col are the 1-D cell weights described in the module docstring.
    Computation: every pixel votes into the cell centre above-left of it, once per corner of its
    cell square with that corner's weight; the four histograms are then added shifted by the
    corner's offset. The padding cells catch the votes that fall off the grid and are cropped.
    """
    cell_slot, corner_weights = cell_geometry(bins.shape, cell_size, grid_shape)
    padded_shape = (grid_shape[0] + 2, grid_shape[1] + 2, num_bins)
    slot = (cell_slot * num_bins + bins).ravel()
    votes = np.zeros(padded_shape)
    weight = None if values is None else np.empty(bins.shape)
    for (down, right), corner_weight in zip(CORNERS, corner_weights):
        if values is not None:
            corner_weight = np.multiply(corner_weight, values, out=weight)
        corner = np.bincount(slot, corner_weight.ravel(), minlength=votes.size)
        corner = corner.reshape(padded_shape)
        votes[down:, right:] += corner[:padded_shape[0] - down, :padded_shape[1] - right]
    return votes[1:-1, 1:-1].astype(np.float32)
