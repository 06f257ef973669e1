"""SIFT keypoints and descriptors as VLFeat 0.9.21 computes them (``vl/sift.c``), and the paper's SIFT map.

The functions reproduce VLFeat's C API (``vl_sift_new`` ... ``vl_sift_calc_keypoint_descriptor``) called
on a row-major (H, W) float image with ``width = W``, ``height = H``, down to its float32 arithmetic
and its fast approximations of exp, atan2 and sqrt, so that the frames come out identical and in
the same order. Coordinates are 0-based pixels, x = column, y = row; angles are radians from +x
towards +y.

Pipeline (S levels per octave, first octave o_min, O octaves)
-------------------------------------------------------------
1. Gaussian scale space. Octave o samples the image every 2^o pixels (o_min < 0 doubles the
   image -o_min times by linear interpolation, o_min > 0 keeps every 2^o_min-th pixel) and holds
   the levels s = -1 ... S + 1 of smoothing

       sigma(s) = sigma0 * 2^(s/S)   (in the octave's pixels),  sigma0 = 1.6 * 2^(1/S).

   The input is assumed pre-smoothed by a nominal 0.5 pixels (0.5 * 2^-o_min octave pixels), so
   level -1 is the image smoothed by sqrt(sigma(-1)^2 - (0.5 * 2^-o_min)^2); each next level is
   the previous one smoothed by the incremental sqrt(sigma(s)^2 - sigma(s-1)^2)
   = sigma0 * sqrt(1 - 2^(-2/S)) * 2^(s/S). Octave o + 1 starts from level S - 1 of octave o,
   subsampled by 2: its smoothing, sigma(S - 1) / 2 = sigma(-1), is already right.
   Smoothing is separable (columns, then rows) with a Gaussian of radius ceil(4 sigma) normalised
   to sum 1, and the image edge replicated.
2. Difference of Gaussians D(s) = G(s + 1) - G(s), s = -1 ... S. A candidate is a point of levels
   0 ... S - 1 strictly greater than its 26 neighbours in (x, y, s) with D >= 0.8 * peak_thresh,
   or strictly smaller with D <= -0.8 * peak_thresh; candidates are listed level by level, row by
   row.
3. Refinement: fit the quadratic D + g.t + t'Ht/2 (central differences) and solve H t = -g by Gauss
   elimination with partial pivoting; if |t_x| or |t_y| exceeds 0.6 move one pixel that way and
   refit (at most 5 fits). A keypoint is kept where |D + g.t/2| > peak_thresh,
   0 <= tr(H_xy)^2 / det(H_xy) < (edge_thresh + 1)^2 / edge_thresh, |t| < 1.5 in every coordinate
   and the refined point lies inside the octave. Its frame is x = (x + t_x) 2^o, y = (y + t_y) 2^o,
   sigma = sigma0 2^((s + t_s)/S) 2^o.
4. Gradients of levels 0 ... S - 1 by central differences (one-sided on the border), stored as
   modulus and angle in [0, 2 pi], with VLFeat's fast sqrt and atan2.
5. Orientations: at the keypoint's integer level, a 36-bin histogram of gradient angles in the
   disc of radius W = max(floor(4.5 sigma), 1) around the rounded centre, each pixel voting its
   modulus times a Gaussian window exp(-r^2 / (2 (1.5 sigma)^2)), split linearly between the two
   nearest bins. The histogram is smoothed 6 times by a circular [1 1 1]/3 filter; each bin above
   80% of the maximum and above its two neighbours is a peak, refined by a parabola; at most 4.
6. Descriptor, per orientation theta: pixels of the gradient level in a square of half-side
   W = floor(sqrt(2) * 3 sigma * 5 / 2 + 0.5) around the rounded centre (image border excluded)
   are rotated by -theta, scaled by the bin width 3 sigma and weighted by a Gaussian of standard
   deviation 2 bins; each votes its weighted modulus trilinearly into a 4 x 4 spatial x 8 angle
   histogram (index 32 * row bin + 8 * column bin + angle bin). The 128 values are L2-normalised,
   clipped at 0.2 and normalised again.

VLFeat's fast approximations, reproduced exactly: exp(-x) by linear interpolation in a 257-entry
table on [0, 25]; atan2 by a cubic in r = (x - |y|) / (x + |y|); sqrt(x) = x / sqrt(x) with the
bit-level inverse-square-root guess 0x5f3759df and two Newton steps.

The SIFT map of Dosovitskiy & Brox
----------------------------------
A grid of (H // 4, W // 4) cells of 4 x 4 pixels; a cell holding a keypoint (first orientation
only) gets [128-d descriptor, sin theta, cos theta, x - 4 floor(x/4), y - 4 floor(y/4), log sigma],
the last keypoint detected winning; other cells are 0.
"""
import numpy as np

from minifeat.image import as_grey_float, check_positive_int

NOMINAL_SIGMA = 0.5        # smoothing the input image is assumed to have, in image pixels
BASE_SIGMA = 1.6           # sigma0 = BASE_SIGMA * 2^(1/S)
FIRST_LEVEL = -1           # levels of an octave: FIRST_LEVEL ... S + 1
MAX_REFINE_FITS = 5
ORIENTATION_BINS = 36
ORIENTATION_WINDOW = 1.5   # Gaussian window of the orientation histogram, in units of sigma
MAX_ORIENTATIONS = 4
SPATIAL_BINS = 4           # per side of the descriptor
ANGLE_BINS = 8
DESCRIPTOR_SIZE = SPATIAL_BINS * SPATIAL_BINS * ANGLE_BINS
BIN_MAGNIFICATION = 3.0    # a spatial bin is 3 sigma wide
DESCRIPTOR_WINDOW = SPATIAL_BINS / 2   # standard deviation of the descriptor window, in bins
DESCRIPTOR_CLIP = 0.2
MAP_CHANNELS = DESCRIPTOR_SIZE + 5

FLOAT_EPSILON = np.float32(1.19209290e-07)
DOUBLE_EPSILON = 2.220446049250313e-16
LOG_OF_2 = 0.693147180559945           # VLFeat's constant, used to count octaves
TWO_PI = 2 * np.pi
TWO_PI_FLOAT = np.float32(TWO_PI)
EXPN_TABLE_SIZE = 256
EXPN_MAX = 25.0
# exp(-k * 25/256), k = 0 ... 257 (the last entry only guards the interpolation at x = 25)
EXPN_TABLE = np.exp(-np.arange(EXPN_TABLE_SIZE + 2) * (EXPN_MAX / EXPN_TABLE_SIZE))


# --------------------------------------------------------------------------------------------
# VLFeat's fast approximations (vl/mathop.h, vl/sift.c)
# --------------------------------------------------------------------------------------------

def fast_expn(x):
    """exp(-x) for float64 x >= 0: linear interpolation in a table of step 25/256; 0 beyond 25."""
    position = x * (EXPN_TABLE_SIZE / EXPN_MAX)
    index = np.minimum(np.floor(position), EXPN_TABLE_SIZE).astype(np.intp)
    fraction = position - index
    below, above = EXPN_TABLE[index], EXPN_TABLE[index + 1]
    return np.where(x > EXPN_MAX, 0.0, below + fraction * (above - below))


def fast_atan2(y, x):
    """atan2(y, x) for float32 arrays, to about 0.006 rad: pi/4 + c1 r + c3 r^3 per half-plane."""
    abs_y = np.abs(y) + FLOAT_EPSILON
    right = x >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(right, (x - abs_y) / (x + abs_y), (x + abs_y) / (abs_y - x))
    angle = np.where(right, np.float32(np.pi / 4), np.float32(3 * np.pi / 4))
    angle = angle + (np.float32(0.1821) * ratio * ratio - np.float32(0.9675)) * ratio
    return np.where(y < 0, -angle, angle)


def fast_sqrt(x):
    """sqrt(x) for float32 x >= 0 as x * (1/sqrt(x)): Carmack's initial guess, two Newton steps."""
    half = np.float32(0.5) * x
    guess = (np.int32(0x5F3759DF) - (x.view(np.int32) >> 1)).view(np.float32)
    for _ in range(2):
        guess = guess * (np.float32(1.5) - half * guess * guess)
    return np.where(x.astype(np.float64) < 1e-8, np.float32(0), x * guess)


def mod_2pi(x):
    """float32 x brought into [0, 2 pi] by repeated subtraction, then addition, of 2 pi in float32."""
    while (too_big := x > TWO_PI_FLOAT).any():
        x = np.where(too_big, x - TWO_PI_FLOAT, x)
    while (negative := x < 0).any():
        x = np.where(negative, x + TWO_PI_FLOAT, x)
    return x


# --------------------------------------------------------------------------------------------
# 1. Gaussian scale space
# --------------------------------------------------------------------------------------------

def gaussian_kernel(sigma):
    """VLFeat's float32 Gaussian of radius max(ceil(4 sigma), 1), normalised by its float32 sum."""
    radius = max(int(np.ceil(4.0 * sigma)), 1)
    distance = np.arange(-radius, radius + 1).astype(np.float32) / np.float32(sigma)
    taps = np.exp(-0.5 * (distance * distance).astype(np.float64)).astype(np.float32)
    return taps / np.cumsum(taps)[-1]


def _correlate_replicate(image, taps, axis):
    """sum_k taps[k] * image[i - r + k] along ``axis`` (edge replicated), accumulated in float32
    from the first tap to the last, as VLFeat's vl_imconvcol_vf does."""
    radius = len(taps) // 2
    length = image.shape[axis]
    padding = [(0, 0)] * image.ndim
    padding[axis] = (radius, radius)
    padded = np.pad(image, padding, mode="edge")
    window = [slice(None)] * image.ndim
    result = np.zeros_like(image)
    for offset, tap in enumerate(taps):
        window[axis] = slice(offset, offset + length)
        result += padded[tuple(window)] * tap
    return result


def gaussian_smooth(image, sigma):
    """Separable Gaussian smoothing of a float32 (H, W) image: along columns, then along rows."""
    taps = gaussian_kernel(sigma)
    return _correlate_replicate(_correlate_replicate(image, taps, axis=0), taps, axis=1)


def _double_size(image):
    """VLFeat's 2x linear upsampling: rows first, then columns; the last sample is repeated."""
    for axis in (1, 0):
        image = np.moveaxis(image, axis, 0)
        doubled = np.repeat(image, 2, axis=0)
        doubled[1:-1:2] = 0.5 * (image[:-1] + image[1:])
        image = np.moveaxis(doubled, 0, axis)
    return np.ascontiguousarray(image)


class ScaleSpace:
    """The geometry of VLFeat's scale space (``vl_sift_new``) for an image of a given size."""

    def __init__(self, height, width, first_octave, levels_per_octave, num_octaves):
        self.first_octave = first_octave
        self.levels = levels_per_octave
        if num_octaves is None:
            num_octaves = max(int(np.floor(np.log(min(width, height)) / LOG_OF_2)) - first_octave - 3, 1)
        self.num_octaves = num_octaves
        self.step = 2.0 ** (1.0 / levels_per_octave)
        self.sigma0 = BASE_SIGMA * self.step
        self.sigma_increment = self.sigma0 * np.sqrt(1.0 - 1.0 / (self.step * self.step))
        self.octave_shapes = [_shift(height, width, octave)
                              for octave in range(first_octave, first_octave + num_octaves)]
        if min(min(shape) for shape in self.octave_shapes) < 2:
            raise ValueError(f"sift: an image of {height}x{width} pixels is too small for octaves "
                             f"{first_octave} ... {first_octave + num_octaves - 1}: every octave "
                             f"needs at least 2x2 pixels")

    def octaves(self, image):
        """Yield (octave index o, float32 levels (S + 3, h_o, w_o)) octave by octave."""
        base = self._first_base(image)
        for octave, (height, width) in enumerate(self.octave_shapes, start=self.first_octave):
            if octave > self.first_octave:
                base = levels[self.levels - 1 - FIRST_LEVEL][::2, ::2][:height, :width]
            levels = [base]
            for level in range(FIRST_LEVEL + 1, self.levels + 2):
                levels.append(gaussian_smooth(levels[-1], self.sigma_increment * self.step ** level))
            yield octave, np.stack(levels)

    def _first_base(self, image):
        """Level -1 of the first octave: the resampled image smoothed up to sigma(-1)."""
        if self.first_octave < 0:
            for _ in range(-self.first_octave):
                image = _double_size(image)
        else:
            stride = 2 ** self.first_octave
            height, width = self.octave_shapes[0]
            image = image[::stride, ::stride][:height, :width]
        target = self.sigma0 * self.step ** FIRST_LEVEL
        present = NOMINAL_SIGMA * 2.0 ** (-self.first_octave)
        if target > present:
            image = gaussian_smooth(np.ascontiguousarray(image), np.sqrt(target * target - present * present))
        return image


def _shift(height, width, octave):
    """Octave size: the image size times 2^-octave, rounded down (VL_SHIFT_LEFT)."""
    if octave >= 0:
        return height >> octave, width >> octave
    return height << -octave, width << -octave


# --------------------------------------------------------------------------------------------
# 2-3. Keypoint detection and refinement
# --------------------------------------------------------------------------------------------

def _local_extrema(dog, peak_thresh):
    """(level, y, x) of the DoG points of levels 1 ... S (array index) that are strict 3x3x3
    maxima with value >= 0.8 peak_thresh or strict minima with value <= -0.8 peak_thresh, in
    scan order (level, row, column)."""
    levels, height, width = dog.shape
    centre = dog[1:-1, 1:-1, 1:-1]
    is_max = centre.astype(np.float64) >= 0.8 * peak_thresh
    is_min = centre.astype(np.float64) <= -0.8 * peak_thresh
    for ds in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if ds == dy == dx == 0:
                    continue
                neighbour = dog[1 + ds:levels - 1 + ds, 1 + dy:height - 1 + dy, 1 + dx:width - 1 + dx]
                is_max &= centre > neighbour
                is_min &= centre < neighbour
    level, y, x = np.nonzero(is_max | is_min)
    return level + 1, y + 1, x + 1


def _solve_3x3(matrix, rhs):
    """Solve matrix t = rhs for a stack of 3x3 systems by Gauss elimination with partial pivoting
    (VLFeat's order of operations); systems with a pivot below 1e-10 get t = 0."""
    a, b = matrix.copy(), rhs.copy()
    items = np.arange(len(b))
    singular = np.zeros(len(b), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(3):
            pivot_row = j + np.argmax(np.abs(a[:, j:, j]), axis=1)
            pivot = a[items, pivot_row, j]
            singular |= np.abs(pivot) < np.float32(1e-10)
            a[items, pivot_row, j:], a[:, j, j:] = a[:, j, j:], a[items, pivot_row, j:].copy()
            b[items, pivot_row], b[:, j] = b[:, j], b[items, pivot_row].copy()
            a[:, j, j:] /= pivot[:, None]
            b[:, j] /= pivot
            for row in range(j + 1, 3):
                factor = a[:, row, j].copy()
                a[:, row, j:] -= factor[:, None] * a[:, j, j:]
                b[:, row] -= factor * b[:, j]
        for j in (2, 1):
            for row in range(j - 1, -1, -1):
                b[:, row] -= b[:, j] * a[:, row, j]
    b[singular] = 0.0
    return b


def _quadratic_fit(dog, level, y, x):
    """Value, gradient (3,) and Hessian (3, 3) of the DoG at integer points by central differences,
    in float64 from float32 differences as VLFeat computes them."""
    def at(ds, dy, dx):
        return dog[level + ds, y + dy, x + dx]

    def half_difference(plus, minus):
        return 0.5 * (at(*plus) - at(*minus)).astype(np.float64)

    def second(plus, minus):
        return (at(*plus) + at(*minus)).astype(np.float64) - 2.0 * centre

    def mixed(first, second_axis):
        def shifted(a, b):
            offset = [0, 0, 0]
            offset[first], offset[second_axis] = a, b
            return at(*offset)
        return 0.25 * (shifted(1, 1) + shifted(-1, -1) - shifted(-1, 1) - shifted(1, -1)).astype(np.float64)

    centre = at(0, 0, 0).astype(np.float64)
    # axes of the (level, y, x) offsets; the fit's unknowns are ordered (x, y, s)
    gradient = np.stack([half_difference((0, 0, 1), (0, 0, -1)),
                         half_difference((0, 1, 0), (0, -1, 0)),
                         half_difference((1, 0, 0), (-1, 0, 0))], axis=1)
    dxx, dyy, dss = second((0, 0, 1), (0, 0, -1)), second((0, 1, 0), (0, -1, 0)), second((1, 0, 0), (-1, 0, 0))
    dxy, dxs, dys = mixed(2, 1), mixed(2, 0), mixed(1, 0)
    hessian = np.stack([np.stack([dxx, dxy, dxs], 1), np.stack([dxy, dyy, dys], 1),
                        np.stack([dxs, dys, dss], 1)], axis=1)
    return centre, gradient, hessian


def refine_keypoints(dog, level, y, x, peak_thresh, edge_thresh):
    """Refine candidate extrema of one octave's DoG (array index level, row, column).

    Returns, for the kept candidates in candidate order, their integer VLFeat level s (0 ... S - 1)
    and their refined (x, y, s) in octave pixels and level units (float64).
    """
    count, (_, height, width) = len(x), dog.shape
    y, x = y.copy(), x.copy()
    centre, gradient = np.empty(count), np.empty((count, 3))
    hessian, offset = np.empty((count, 3, 3)), np.empty((count, 3))
    active = np.arange(count)
    for fit in range(MAX_REFINE_FITS):
        c, g, h = _quadratic_fit(dog, level[active], y[active], x[active])
        t = _solve_3x3(h, -g)
        centre[active], gradient[active], hessian[active], offset[active] = c, g, h, t
        if fit == MAX_REFINE_FITS - 1:
            break
        xa, ya = x[active], y[active]
        move_x = ((t[:, 0] > 0.6) & (xa < width - 2)).astype(int) - ((t[:, 0] < -0.6) & (xa > 1))
        move_y = ((t[:, 1] > 0.6) & (ya < height - 2)).astype(int) - ((t[:, 1] < -0.6) & (ya > 1))
        x[active] += move_x
        y[active] += move_y
        active = active[(move_x != 0) | (move_y != 0)]

    value = centre + 0.5 * np.sum(gradient * offset, axis=1)
    dxx, dyy, dxy = hessian[:, 0, 0], hessian[:, 1, 1], hessian[:, 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        edge_score = (dxx + dyy) * (dxx + dyy) / (dxx * dyy - dxy * dxy)
    level = level + FIRST_LEVEL
    refined = np.stack([x, y, level], axis=1) + offset
    keep = ((np.abs(value) > peak_thresh)
            & (edge_score < (edge_thresh + 1) * (edge_thresh + 1) / edge_thresh)
            & (edge_score >= 0)
            & np.all(np.abs(offset) < 1.5, axis=1)
            & (refined[:, 0] >= 0) & (refined[:, 0] <= width - 1)
            & (refined[:, 1] >= 0) & (refined[:, 1] <= height - 1)
            & (refined[:, 2] >= FIRST_LEVEL) & (refined[:, 2] <= dog.shape[0] + FIRST_LEVEL))
    return level[keep], refined[keep]
