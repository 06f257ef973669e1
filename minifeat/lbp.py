"""Uniform local binary patterns, numerically as VLFeat 0.9.21's ``vl_lbp`` (``vl/lbp.c``).

Shapes: a grey (H, W) image (colour images are converted to grey) gives features
(H // c, W // c, 58) float32 for cells of ``c = cell_size`` pixels.

1. Pattern. At every interior pixel (1 <= y <= H-2, 1 <= x <= W-2) the 8 neighbours are
   compared with the centre, bit i set where the neighbour is strictly brighter, reading
   counter-clockwise on screen from the east: E, SE, S, SW, W, NW, N, NE (y grows downwards).
2. Quantisation into 58 bins. The 56 "uniform" 8-bit strings, circularly a single run of j ones
   (1 <= j <= 7) starting at bit i, go to bin ``7 i + j - 1``; the all-zeros and all-ones strings
   go to bin 56; every other string goes to bin 57.
3. Spatial binning: each pixel's unit vote goes bilinearly to the four nearest cell centres
   (:func:`minifeat.image.bilinear_cell_histograms`); pixels past the last whole cell vote
   only into the cells they reach.
4. Normalisation per cell: ``h_b <- sqrt(h_b) / (sqrt(sum_b h_b) + 1e-10)``, so that the
   vector of square roots has unit L2 norm (a Hellinger-style normalisation).
"""
import numpy as np

from minifeat.image import as_grey_float, bilinear_cell_histograms, check_positive_int

NUM_BINS = 58
CONSTANT_BIN = 56
OTHER_BIN = 57
NORM_EPSILON = np.float32(1e-10)
# (row, column) offsets of the neighbours giving bits 0..7: E, SE, S, SW, W, NW, N, NE.
NEIGHBOUR_OFFSETS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))


def uniform_pattern_bins():
    """Lookup table (256,) uint8: the bin of each 8-bit pattern (step 2 of the module docstring)."""
    table = np.full(256, OTHER_BIN, dtype=np.uint8)
    table[[0x00, 0xFF]] = CONSTANT_BIN
    for start in range(8):
        for run in range(1, 8):
            ones = ((1 << run) - 1) << start
            pattern = (ones | (ones >> 8)) & 0xFF  # rotate the run around the circle
            table[pattern] = 7 * start + run - 1
    return table


UNIFORM_PATTERN_BINS = uniform_pattern_bins()


def mirror_permutation():
    """(58,) int: the bins of a left-right mirrored image, ``lbp(image[:, ::-1])[..., b] ==
    lbp(image)[:, ::-1, perm[b]]`` exactly when the width is a multiple of the cell size.

    Mirroring swaps the neighbours (dr, dc) and (dr, -dc), bit i with bit (4 - i) mod 8, which
    takes a run of ones to a run of the same length (uniform stays uniform) and leaves the
    all-zeros, all-ones and other strings in their bins; the bilinear cell binning is symmetric
    when whole cells cover the width."""
    perm = np.arange(NUM_BINS)
    for pattern in range(256):
        mirrored = sum(1 << ((4 - bit) % 8) for bit in range(8) if pattern >> bit & 1)
        perm[UNIFORM_PATTERN_BINS[mirrored]] = UNIFORM_PATTERN_BINS[pattern]
    return perm


def lbp_grid_shape(image_shape, cell_size=16):
    """Number of LBP cells (rows, columns) for an image of shape (H, W[, C]): whole cells only."""
    height, width = image_shape[:2]
    return height // cell_size, width // cell_size


def lbp(image, cell_size=16):
    """Uniform LBP features (H // c, W // c, 58) float32 of a 0..255 image, grey or colour."""
    caller = "minifeat.lbp"
    check_positive_int(cell_size, "cell_size", caller)
    # A 3x3 neighbourhood and at least one whole cell.
    grey = as_grey_float(image, caller, min_side=max(3, cell_size))
    histograms = bilinear_cell_histograms(local_binary_patterns(grey), None, NUM_BINS, cell_size,
                                          lbp_grid_shape(grey.shape, cell_size))
    roots = np.sqrt(histograms)
    return roots / (np.sqrt(histograms.sum(axis=2, keepdims=True)) + NORM_EPSILON)


def local_binary_patterns(grey):
    """Steps 1-2 of the module docstring: the bins (H - 2, W - 2) uint8 of the interior pixels."""
    height, width = grey.shape
    centre = grey[1:-1, 1:-1]
    pattern = np.zeros(centre.shape, dtype=np.uint8)
    for bit, (down, right) in enumerate(NEIGHBOUR_OFFSETS):
        neighbour = grey[1 + down:height - 1 + down, 1 + right:width - 1 + right]
        pattern |= (neighbour > centre).view(np.uint8) << bit
    return UNIFORM_PATTERN_BINS[pattern]
