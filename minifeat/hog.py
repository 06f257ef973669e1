"""Histograms of oriented gradients, numerically as VLFeat 0.9.21's ``vl_hog`` (``vl/hog.c``).

Shapes: an image (H, W) or (H, W, C) gives features (H', W', D) float32 with
``H' = (H + c // 2) // c`` and ``W' = (W + c // 2) // c`` cells of ``c = cell_size`` pixels
(the last cell is at least half inside the image), and, for ``n = num_orientations``,
``D = 3n + 4`` (UoCTTI, Felzenszwalb et al.; 31 for n = 9) or ``D = 4n`` (Dalal-Triggs; 36).

1. Gradient. At every interior pixel (1 <= y <= H-2, 1 <= x <= W-2), by central differences
   ``g = (I[y, x+1] - I[y, x-1], I[y+1, x] - I[y-1, x])``; on a colour image, the gradient of
   the channel with the largest |g| (the first such channel on ties). Border pixels vote nothing.
2. Orientation, hard assigned: with the 2n directed orientations ``e_k = (cos θ_k, sin θ_k)``,
   ``θ_k = k π / n`` for k < n and their opposites for n <= k < 2n, the pixel votes |g| into the
   directed bin maximising ``g · e_k`` (angles measured from +x towards +y, i.e. downwards).
3. Spatial binning: the vote is spread bilinearly over the four nearest cell centres
   (:func:`minifeat.image.bilinear_cell_histograms`), giving directed histograms h (H', W', 2n).
4. Block normalisation. The undirected histogram of a cell is ``u_k = h_k + h_{k+n}`` and its
   energy ``E = sum_k u_k^2``. Each cell lies in four 2x2-cell blocks (upper-left, upper-right,
   lower-left, lower-right of it; cells beyond the grid edge are replaced by the nearest cell),
   with factors ``f_j = 1 / sqrt(sum of E over block j + 1e-4)``. With ``clip(v) = min(v, 0.2)``:

   - UoCTTI: directed ``0.5 sum_j clip(f_j h_k)`` (2n), undirected ``0.5 sum_j clip(f_j u_k)``
     (n) and four texture terms ``sum_k clip(f_j u_k) / sqrt(18)`` (one per block j);
   - Dalal-Triggs: the four normalised undirected histograms ``clip(f_j u_k)``, block by block.

:func:`hog_render` draws features as VLFeat's ``vl_hog_render`` does: each cell a
``glyph_size``-pixel square in which every orientation adds a bar perpendicular to its
gradient direction, weighted by the sum of that orientation's components.
"""
import numpy as np

from minifeat.image import as_float_image, bilinear_cell_histograms, check_positive_int

VARIANTS = ("uoctti", "dalaltriggs")
CLIP = 0.2
BLOCK_EPSILON = 1e-4
TEXTURE_SCALE = np.float32(1.0) / np.sqrt(np.float32(18.0))  # VLFeat's constant, whatever n is


def hog_grid_shape(image_shape, cell_size=8):
    """Number of HOG cells (rows, columns) for an image of shape (H, W[, C]): VLFeat's rounding."""
    height, width = image_shape[:2]
    return (height + cell_size // 2) // cell_size, (width + cell_size // 2) // cell_size


def hog_dimension(num_orientations=9, variant="uoctti"):
    """Length of one cell's descriptor: 3n + 4 (UoCTTI) or 4n (Dalal-Triggs)."""
    _check_variant(variant, "minifeat.hog_dimension")
    return 3 * num_orientations + 4 if variant == "uoctti" else 4 * num_orientations


def hog(image, cell_size=8, num_orientations=9, variant="uoctti"):
    """HOG features (H', W', D) float32 of a grey (H, W) or colour (H, W, 3) 0..255 image."""
    caller = "minifeat.hog"
    check_positive_int(cell_size, "cell_size", caller)
    check_positive_int(num_orientations, "num_orientations", caller)
    _check_variant(variant, caller)
    # VLFeat needs more than 3 pixels and at least one cell (half a cell, by its rounding).
    pixels = as_float_image(image, caller, min_side=max(4, cell_size - cell_size // 2))
    histograms = directed_gradient_histograms(pixels, cell_size, num_orientations)
    return normalise_blocks(histograms, variant)


def directed_gradient_histograms(pixels, cell_size, num_orientations):
    """Steps 1-3 of the module docstring: histograms (H', W', 2n) float32 of a float image."""
    planes = [pixels] if pixels.ndim == 2 else [pixels[:, :, c] for c in range(pixels.shape[2])]
    grad_x, grad_y, squared_norm = _central_differences(planes[0])
    for plane in planes[1:]:  # keep, per pixel, the first channel with the largest gradient
        candidate = _central_differences(plane)
        stronger = candidate[2] > squared_norm
        for best, challenger in zip((grad_x, grad_y, squared_norm), candidate):
            np.copyto(best, challenger, where=stronger)
    magnitude = np.sqrt(squared_norm)

    # Hard assignment: scan the n undirected orientations, keeping the first best |g . e_k|.
    # Bins are kept in the smallest integer type (a byte for n < 128), which keeps the scan fast;
    # the branch-free update below is exact in its modular arithmetic.
    angles = np.arange(num_orientations) * np.pi / num_orientations
    bin_type = np.min_scalar_type(2 * num_orientations)
    best_strength = np.full(grad_x.shape, -1.0, dtype=np.float32)
    best_bin = np.zeros(grad_x.shape, dtype=bin_type)
    for k, (cos_k, sin_k) in enumerate(zip(np.cos(angles).astype(np.float32),
                                           np.sin(angles).astype(np.float32))):
        score = grad_x * cos_k + grad_y * sin_k  # float32 arithmetic, as VLFeat's
        strength = np.abs(score)
        directed_bin = (score < 0).astype(bin_type) * num_orientations + k
        better = strength > best_strength
        best_bin += better * (directed_bin - best_bin)  # where(better, directed_bin, best_bin)
        np.maximum(best_strength, strength, out=best_strength)

    grid_shape = hog_grid_shape(pixels.shape, cell_size)
    return bilinear_cell_histograms(best_bin, magnitude, 2 * num_orientations, cell_size,
                                    grid_shape)


def _central_differences(plane):
    """Gradient (x, y) and its squared norm at the interior pixels of one (H, W) plane."""
    grad_x = plane[1:-1, 2:] - plane[1:-1, :-2]
    grad_y = plane[2:, 1:-1] - plane[:-2, 1:-1]
    return grad_x, grad_y, grad_x * grad_x + grad_y * grad_y


def normalise_blocks(histograms, variant="uoctti"):
    """Step 4 of the module docstring: directed histograms (H', W', 2n) to features (H', W', D)."""
    num_orientations = histograms.shape[2] // 2
    undirected = histograms[:, :, :num_orientations] + histograms[:, :, num_orientations:]
    energy = np.sum(undirected * undirected, axis=2).astype(np.float64)
    padded = np.pad(energy, 1, mode="edge")
    # block_energy[i, j]: the 2x2 block whose upper-left cell is (i - 1, j - 1).
    block_energy = padded[:-1, :-1] + padded[:-1, 1:] + padded[1:, :-1] + padded[1:, 1:]
    around_cell = [block_energy[:-1, :-1], block_energy[:-1, 1:],  # upper-left, upper-right
                   block_energy[1:, :-1], block_energy[1:, 1:]]    # lower-left, lower-right
    factors = 1.0 / np.sqrt(np.stack(around_cell, axis=2) + BLOCK_EPSILON)  # (H', W', 4)

    directed = factors[:, :, :, None] * histograms[:, :, None, :].astype(np.float64)
    undirected = directed[..., :num_orientations] + directed[..., num_orientations:]
    clipped_undirected = np.minimum(undirected, CLIP)  # (H', W', 4, n)
    if variant == "dalaltriggs":
        return clipped_undirected.reshape(*histograms.shape[:2], -1).astype(np.float32)
    features = np.concatenate([
        0.5 * np.minimum(directed, CLIP).sum(axis=2),
        0.5 * clipped_undirected.sum(axis=2),
        TEXTURE_SCALE * clipped_undirected.sum(axis=3),
    ], axis=2)
    return features.astype(np.float32)


def hog_glyphs(num_orientations=9, glyph_size=21):
    """The bars ``vl_hog_render`` draws: (n, glyph_size, glyph_size) float32, 1 on the bar.

    Orientation k's bar is perpendicular to θ_k and crosses the glyph's centre; it is drawn as
    one pixel per column (mostly horizontal bars) or per row (mostly vertical ones), shortened
    at both ends so that its extent along that axis is ``|cos|`` (or ``sin``) of its angle.
    """
    glyphs = np.zeros((num_orientations, glyph_size, glyph_size), dtype=np.float32)
    centre = (glyph_size - 1) / 2
    for k in range(num_orientations):
        bar_angle = np.fmod(k * np.pi / num_orientations + np.pi / 2, np.pi)
        cos_a, sin_a = np.cos(bar_angle), np.sin(bar_angle)
        mostly_horizontal = bar_angle <= np.pi / 4 or bar_angle >= 3 * np.pi / 4
        slope = sin_a / cos_a if mostly_horizontal else cos_a / sin_a
        extent = abs(cos_a) if mostly_horizontal else sin_a
        skip = int((1 - extent) / 2 * glyph_size)
        along = np.arange(skip, glyph_size - skip)
        across = _round_half_away(slope * along + (1 - slope) * centre)
        if mostly_horizontal:
            glyphs[k, across, along] = 1
        else:
            glyphs[k, along, across] = 1
    return glyphs


def hog_render(features, glyph_size=21, variant="uoctti"):
    """Picture (H' * glyph_size, W' * glyph_size) float32 of HOG features, as ``vl_hog_render``.

    A cell's glyph is ``sum_k w_k * bar_k`` with ``w_k`` the sum of the cell's components of
    orientation k (directed, opposite and undirected for UoCTTI; the four blocks for
    Dalal-Triggs), each pixel clipped to ``[min(0, min_k w_k), max(0, max_k w_k)]``.
    """
    caller = "minifeat.hog_render"
    _check_variant(variant, caller)
    check_positive_int(glyph_size, "glyph_size", caller)
    features = np.asarray(features, dtype=np.float32)
    chunks = 3 if variant == "uoctti" else 4
    extra = 4 if variant == "uoctti" else 0
    if features.ndim != 3 or features.shape[2] <= extra or (features.shape[2] - extra) % chunks:
        raise ValueError(f"{caller}: expected {variant} HOG features (H', W', D), "
                         f"got shape {features.shape}")
    num_orientations = (features.shape[2] - extra) // chunks
    cells_down, cells_across, _ = features.shape
    per_chunk = features[:, :, :chunks * num_orientations].reshape(
        cells_down, cells_across, chunks, num_orientations)
    weights = per_chunk.sum(axis=2)  # (H', W', n)
    glyphs = hog_glyphs(num_orientations, glyph_size)
    cells = np.einsum("yxk,kab->yxab", weights, glyphs)
    low = np.minimum(weights.min(axis=2), 0)[:, :, None, None]
    high = np.maximum(weights.max(axis=2), 0)[:, :, None, None]
    cells = np.clip(cells, low, high)
    picture = cells.transpose(0, 2, 1, 3)  # (H', glyph row, W', glyph column)
    return picture.reshape(cells_down * glyph_size, cells_across * glyph_size).astype(np.float32)


def _round_half_away(values):
    """C's ``lround``: nearest integer, halves away from zero (``np.round`` rounds them to even)."""
    return (np.sign(values) * np.floor(np.abs(values) + 0.5)).astype(np.intp)


def _check_variant(variant, caller):
    if variant not in VARIANTS:
        raise ValueError(f"{caller}: variant must be one of {VARIANTS}, got {variant!r}")
