"""SIFT keypoints and descriptors as VLFeat 0.9.21 computes them (``vl/sift.c``); the SIFT map.

The functions reproduce VLFeat's C API (``vl_sift_new`` ... ``vl_sift_calc_keypoint_descriptor``)
called on a row-major (H, W) float image with ``width = W``, ``height = H``, down to its float32
arithmetic, its order of summation and its fast approximations of exp, atan2 and sqrt, so that the
frames come out identical and in the same order. Coordinates are 0-based pixels, x = column,
y = row; angles are radians from +x towards +y.

Pipeline (S levels per octave, first octave o_min, O octaves)
-------------------------------------------------------------
1. Gaussian scale space. Octave o samples the image every 2^o pixels (o_min < 0 doubles the
   image -o_min times by linear interpolation, o_min > 0 keeps every 2^o_min-th pixel) and holds
   the levels s = -1 ... S + 1 of smoothing

       sigma(s) = sigma0 * 2^(s/S)   (in the octave's pixels),  sigma0 = 1.6 * 2^(1/S).

   The input is assumed pre-smoothed by a nominal 0.5 pixels (0.5 * 2^-o_min octave pixels), so
   level -1 is the image smoothed by sqrt(sigma(-1)^2 - (0.5 * 2^-o_min)^2); each next level is
   the previous one smoothed by the increment sqrt(sigma(s)^2 - sigma(s-1)^2)
   = sigma0 * sqrt(1 - 2^(-2/S)) * 2^(s/S). Octave o + 1 starts from level S - 1 of octave o,
   subsampled by 2: its smoothing, sigma(S - 1) / 2 = sigma(-1), is already right.
   Smoothing is separable (along columns, then rows) with a Gaussian of radius ceil(4 sigma)
   normalised to sum 1, the image edge replicated.
2. Difference of Gaussians D(s) = G(s + 1) - G(s), s = -1 ... S. A candidate is a point of levels
   0 ... S - 1 strictly greater than its 26 neighbours in (x, y, s) with D >= 0.8 peak_thresh,
   or strictly smaller with D <= -0.8 peak_thresh; candidates are listed level by level, row by
   row.
3. Refinement: fit the quadratic D + g.t + t'Ht/2 (central differences) and solve H t = -g by
   Gauss elimination with partial pivoting; if |t_x| or |t_y| exceeds 0.6, move one pixel that
   way and refit (at most 5 fits). A keypoint is kept where |D + g.t/2| > peak_thresh,
   0 <= tr(H_xy)^2 / det(H_xy) < (edge_thresh + 1)^2 / edge_thresh, |t| < 1.5 in every
   coordinate and the refined point lies inside the octave. Its frame is x = (x + t_x) 2^o,
   y = (y + t_y) 2^o, sigma = sigma0 2^((s + t_s)/S) 2^o.
4. Gradients of levels 0 ... S - 1 by central differences (one-sided on the border), stored as
   modulus and angle in [0, 2 pi], with VLFeat's fast sqrt and atan2.
5. Orientations: at the keypoint's integer level, a 36-bin histogram of gradient angles in the
   disc of radius W = max(floor(4.5 sigma), 1) around the rounded centre, each pixel voting its
   modulus times a Gaussian window exp(-r^2 / (2 (1.5 sigma)^2)), split linearly between the two
   nearest bins. The histogram is smoothed 6 times by a circular [1 1 1]/3 filter; each bin above
   80% of the maximum and above its two neighbours is a peak, refined by a parabola; at most 4.
6. Descriptor, per orientation theta: the pixels of the gradient level in a square of half-side
   W = floor(sqrt(2) * 3 sigma * 5 / 2 + 0.5) around the rounded centre (image border excluded)
   are rotated by -theta, measured in bins of width 3 sigma and weighted by a Gaussian of
   standard deviation 2 bins; each votes its weighted modulus trilinearly into a 4 x 4 spatial
   x 8 angle histogram (index 32 * row bin + 8 * column bin + angle bin). The 128 values are
   L2-normalised, clipped at 0.2 and normalised again.

VLFeat's fast approximations, reproduced exactly: exp(-x) by linear interpolation in a table of
exp(-k 25/256), k = 0 ... 256; atan2 by a cubic in r = (x - |y|) / (x + |y|); sqrt(x) as
x * (1/sqrt(x)) from the bit-level guess 0x5f3759df refined by two Newton steps.

The SIFT map of Dosovitskiy & Brox
----------------------------------
A grid of (H // 4, W // 4) cells of 4 x 4 pixels; a cell holding a keypoint (first orientation
only) gets [128-d descriptor, sin theta, cos theta, x - 4 floor(x/4), y - 4 floor(y/4),
log sigma], the last keypoint detected winning; other cells are 0.
"""
import numpy as np

from minifeat.image import as_grey_float, check_positive_int

NOMINAL_SIGMA = 0.5        # smoothing the input image is assumed to have, in image pixels
BASE_SIGMA = 1.6           # sigma0 = BASE_SIGMA * 2^(1/S)
FIRST_LEVEL = -1           # the levels of an octave are FIRST_LEVEL ... S + 1
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
WINDOW_BATCH_PIXELS = 1 << 20   # bounds the memory of the per-pixel arrays


# --------------------------------------------------------------------------------------------
# VLFeat's fast approximations (vl/mathop.h, vl/sift.c)
# --------------------------------------------------------------------------------------------

def fast_expn(x):
    """exp(-x) for float64 x >= 0: linear interpolation in a table of step 25/256; 0 beyond 25."""
    position = x * (EXPN_TABLE_SIZE / EXPN_MAX)
    index = np.minimum(position, EXPN_TABLE_SIZE).astype(np.intp)      # floor, as x >= 0
    fraction = position - index
    below, above = EXPN_TABLE[index], EXPN_TABLE[index + 1]
    return np.where(x > EXPN_MAX, 0.0, below + fraction * (above - below))


def fast_atan2(y, x):
    """atan2(y, x) of float32 arrays to about 0.006 rad: pi/4 - 0.9675 r + 0.1821 r^3 with
    r = (x - |y|) / (x + |y|) where x >= 0, 3 pi/4 - ... with r = (x + |y|) / (|y| - x) where
    x < 0, and the sign of y."""
    abs_y = np.abs(y) + FLOAT_EPSILON
    right = x >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(right, (x - abs_y) / (x + abs_y), (x + abs_y) / (abs_y - x))
    angle = np.where(right, np.float32(np.pi / 4), np.float32(3 * np.pi / 4))
    angle = angle + (np.float32(0.1821) * ratio * ratio - np.float32(0.9675)) * ratio
    return np.where(y < 0, -angle, angle)


def fast_sqrt(x):
    """sqrt(x) of float32 x >= 0 as x * (1/sqrt(x)): Carmack's initial guess, two Newton steps."""
    half = np.float32(0.5) * x
    guess = (np.int32(0x5F3759DF) - (x.view(np.int32) >> 1)).view(np.float32)
    for _ in range(2):
        guess = guess * (np.float32(1.5) - half * guess * guess)
    return np.where(x.astype(np.float64) < 1e-8, np.float32(0), x * guess)


def mod_2pi(x):
    """float32 x brought into [0, 2 pi] by subtracting, then adding, 2 pi in float32."""
    while (too_big := x > TWO_PI_FLOAT).any():
        x = np.where(too_big, x - TWO_PI_FLOAT, x)
    while (negative := x < 0).any():
        x = np.where(negative, x + TWO_PI_FLOAT, x)
    return x


# --------------------------------------------------------------------------------------------
# 1. Gaussian scale space
# --------------------------------------------------------------------------------------------

def gaussian_kernel(sigma):
    """VLFeat's float32 Gaussian of radius max(ceil(4 sigma), 1), divided by its float32 sum."""
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


def _octave_shape(height, width, octave):
    """The image size times 2^-octave, rounded down (VLFeat's VL_SHIFT_LEFT)."""
    if octave >= 0:
        return height >> octave, width >> octave
    return height << -octave, width << -octave


class ScaleSpace:
    """The geometry of VLFeat's scale space (``vl_sift_new``) for an image of a given size."""

    def __init__(self, height, width, first_octave, levels_per_octave, num_octaves):
        self.first_octave = first_octave
        self.levels = levels_per_octave
        if num_octaves is None:
            log2_size = int(np.floor(np.log(min(width, height)) / LOG_OF_2))
            num_octaves = max(log2_size - first_octave - 3, 1)
        self.num_octaves = num_octaves
        self.step = 2.0 ** (1.0 / levels_per_octave)
        self.sigma0 = BASE_SIGMA * self.step
        self.sigma_increment = self.sigma0 * np.sqrt(1.0 - 1.0 / (self.step * self.step))
        last_octave = first_octave + num_octaves - 1
        self.octave_shapes = [_octave_shape(height, width, octave)
                              for octave in range(first_octave, last_octave + 1)]
        if min(min(shape) for shape in self.octave_shapes) < 2:
            raise ValueError(f"sift: an image of {height}x{width} pixels is too small for octaves "
                             f"{first_octave} ... {last_octave}: every octave needs 2x2 pixels")

    def octaves(self, image):
        """Yield (octave index o, float32 levels (S + 3, h_o, w_o)) octave by octave."""
        base = self._first_base(image)
        for octave, (height, width) in enumerate(self.octave_shapes, start=self.first_octave):
            levels = [base]
            for level in range(FIRST_LEVEL + 1, self.levels + 2):
                increment = self.sigma_increment * self.step ** level
                levels.append(gaussian_smooth(levels[-1], increment))
            yield octave, np.stack(levels)
            base = levels[self.levels - 1 - FIRST_LEVEL][::2, ::2][:height // 2, :width // 2]

    def _first_base(self, image):
        """Level -1 of the first octave: the resampled image smoothed up to sigma(-1)."""
        if self.first_octave < 0:
            for _ in range(-self.first_octave):
                image = _double_size(image)
        else:
            stride = 2 ** self.first_octave
            height, width = self.octave_shapes[0]
            image = np.ascontiguousarray(image[::stride, ::stride][:height, :width])
        target = self.sigma0 * self.step ** FIRST_LEVEL
        present = NOMINAL_SIGMA * 2.0 ** (-self.first_octave)
        if target > present:
            image = gaussian_smooth(image, np.sqrt(target * target - present * present))
        return image


# --------------------------------------------------------------------------------------------
# 2-3. Keypoint detection and refinement
# --------------------------------------------------------------------------------------------

def _local_extrema(dog, peak_thresh):
    """(level, y, x) array indices of the DoG points of levels 1 ... S that are strict 3x3x3
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
                neighbour = dog[1 + ds:levels - 1 + ds, 1 + dy:height - 1 + dy,
                                1 + dx:width - 1 + dx]
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
            # swap row j with the pivot row, then divide it by the pivot
            row_j, row_p = a[:, j, j:].copy(), a[items, pivot_row, j:]
            a[:, j, j:], a[items, pivot_row, j:] = row_p, row_j
            b_j, b_p = b[:, j].copy(), b[items, pivot_row]
            b[:, j], b[items, pivot_row] = b_p, b_j
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
    """Value, gradient (N, 3) and Hessian (N, 3, 3) in (x, y, s) of the DoG at integer points by
    central differences: float32 sums of samples, scaled and combined in float64 as in VLFeat."""
    def at(step):
        dx, dy, ds = step
        return dog[level + ds, y + dy, x + dx]

    unit = np.eye(3, dtype=int)     # one step along x, y, s
    centre = at((0, 0, 0)).astype(np.float64)
    gradient = np.stack([0.5 * (at(e) - at(-e)).astype(np.float64) for e in unit], axis=1)
    hessian = np.empty((len(x), 3, 3))
    for i in range(3):
        for j in range(i, 3):
            e, f = unit[i], unit[j]
            if i == j:
                second = (at(e) + at(-e)).astype(np.float64) - 2.0 * centre
            else:
                corners = at(e + f) + at(-e - f) - at(-e + f) - at(e - f)
                second = 0.25 * corners.astype(np.float64)
            hessian[:, i, j] = hessian[:, j, i] = second
    return centre, gradient, hessian


def refine_keypoints(dog, level, y, x, peak_thresh, edge_thresh):
    """Refine candidate extrema of one octave's DoG (array index level, row, column).

    Returns, for the kept candidates in candidate order, their integer VLFeat level s
    (0 ... S - 1) and their refined (x, y, s) in octave pixels and level units (float64).
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

    value = centre + 0.5 * (gradient[:, 0] * offset[:, 0] + gradient[:, 1] * offset[:, 1]
                            + gradient[:, 2] * offset[:, 2])
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


# --------------------------------------------------------------------------------------------
# 4. Gradients, and the windows of pixels around keypoints
# --------------------------------------------------------------------------------------------

def polar_gradients(levels):
    """Gradient modulus and angle in [0, 2 pi] (float32) of a stack of levels (n, h, w):
    central differences inside, one-sided differences on the border rows and columns."""
    def derivative(axis):
        image = np.moveaxis(levels, axis, 0)
        result = np.empty_like(image)
        result[1:-1] = 0.5 * (image[2:] - image[:-2])
        result[0] = image[1] - image[0]
        result[-1] = image[-1] - image[-2]
        return np.moveaxis(result, 0, axis)

    gx, gy = derivative(2), derivative(1)
    modulus = fast_sqrt(gx * gx + gy * gy)
    angle = mod_2pi((fast_atan2(gy, gx).astype(np.float64) + TWO_PI).astype(np.float32))
    return modulus, angle


def _window_groups(radius):
    """Split items by the half-side r of their square window, in batches of at most about
    WINDOW_BATCH_PIXELS window pixels: yields (item indices, offsets -r ... r). Items with a
    negative half-side have no window."""
    for half_side in np.unique(radius[radius >= 0]):
        members = np.flatnonzero(radius == half_side)
        offsets = np.arange(-half_side, half_side + 1)
        batch = max(1, WINDOW_BATCH_PIXELS // len(offsets) ** 2)
        for start in range(0, len(members), batch):
            yield members[start:start + batch], offsets


def _window_pixels(centre_x, centre_y, level, offsets, shape):
    """Columns px (n, 1, K) and rows py (n, K, 1) of n square windows, and the flat index
    (n, K, K) of each window pixel in a gradient stack of the given shape (levels, h, w)."""
    _, height, width = shape
    px = (centre_x[:, None] + offsets)[:, None, :]
    py = (centre_y[:, None] + offsets)[:, :, None]
    return px, py, (level[:, None, None] * height + py) * width + px


# --------------------------------------------------------------------------------------------
# 5. Orientations
# --------------------------------------------------------------------------------------------

def keypoint_orientations(x, y, sigma, level, modulus, angle):
    """Dominant gradient orientations of keypoints (octave pixels, float64; ``level`` indexes the
    gradient stack). Returns (keypoint index, angle in radians, float64), ordered by keypoint and
    then by histogram bin, at most 4 per keypoint."""
    _, height, width = modulus.shape
    centre_x, centre_y = (x + 0.5).astype(np.intp), (y + 0.5).astype(np.intp)
    window_sigma = ORIENTATION_WINDOW * sigma
    radius = np.maximum(np.floor(3.0 * window_sigma), 1).astype(np.intp)
    histogram = np.zeros((len(x), ORIENTATION_BINS))
    for members, offsets in _window_groups(radius):
        px, py, pixel = _window_pixels(centre_x[members], centre_y[members], level[members],
                                       offsets, modulus.shape)
        dx, dy = px - x[members, None, None], py - y[members, None, None]
        squared_distance = dx * dx + dy * dy
        # the disc of radius W around the rounded centre, inside the image
        inside = ((squared_distance < offsets[-1] * offsets[-1] + 0.6)
                  & (px >= 0) & (px < width) & (py >= 0) & (py < height))
        sample = np.flatnonzero(inside)
        member = sample // len(offsets) ** 2
        pixel, squared_distance = pixel.ravel()[sample], squared_distance.ravel()[sample]
        sample_sigma = window_sigma[members][member]
        weight = fast_expn(squared_distance / (2 * sample_sigma * sample_sigma))
        vote = modulus.ravel()[pixel].astype(np.float64)
        position = ORIENTATION_BINS * angle.ravel()[pixel].astype(np.float64) / TWO_PI
        lower_bin = np.floor(position - 0.5)
        upper_share = position - lower_bin - 0.5
        lower_bin = lower_bin.astype(np.intp)
        # each pixel votes into its two nearest bins, lower first (VLFeat's order of summation)
        bins = np.stack([(lower_bin + ORIENTATION_BINS) % ORIENTATION_BINS,
                         (lower_bin + 1) % ORIENTATION_BINS], axis=1)
        bins += ORIENTATION_BINS * member[:, None]
        votes = np.stack([(1 - upper_share) * vote * weight, upper_share * vote * weight], axis=1)
        counts = np.bincount(bins.ravel(), weights=votes.ravel(),
                             minlength=len(members) * ORIENTATION_BINS)
        histogram[members] = counts.reshape(len(members), ORIENTATION_BINS)

    def neighbours(values):
        return np.roll(values, 1, axis=1), np.roll(values, -1, axis=1)

    for _ in range(6):
        previous, following = neighbours(histogram)
        histogram = (previous + histogram + following) / 3.0
    previous, following = neighbours(histogram)
    maximum = histogram.max(axis=1, initial=0.0)[:, None]
    is_peak = (histogram > 0.8 * maximum) & (histogram > previous) & (histogram > following)
    is_peak &= np.cumsum(is_peak, axis=1) <= MAX_ORIENTATIONS
    keypoint, peak = np.nonzero(is_peak)
    h0, hm, hp = histogram[keypoint, peak], previous[keypoint, peak], following[keypoint, peak]
    shift = -0.5 * (hp - hm) / (hp + hm - 2 * h0)
    return keypoint, TWO_PI * (peak + shift + 0.5) / ORIENTATION_BINS


# --------------------------------------------------------------------------------------------
# 6. Descriptors
# --------------------------------------------------------------------------------------------

# Votes are collected on a 6 x 6 grid of spatial bins -3 ... 2, whose border (votes that VLFeat
# drops) is cropped at the end; the slots of bin b are b + PADDED_OFFSET.
PADDED_BINS = SPATIAL_BINS + 2
PADDED_OFFSET = SPATIAL_BINS // 2 + 1
# Steps from a pixel's first slot to its 8 votes (x step, y step, angle step), in VLFeat's order;
# row 1 serves a first angle bin of 7, whose upper neighbour is bin 0.
_STEP_X, _STEP_Y, _STEP_T = (steps.ravel() for steps in np.indices((2, 2, 2)))
VOTE_SLOT_STEPS = np.stack([(_STEP_Y * PADDED_BINS + _STEP_X) * ANGLE_BINS + _STEP_T * angle_step
                            for angle_step in (1, 1 - ANGLE_BINS)])


def keypoint_descriptors(x, y, sigma, level, theta, modulus, angle):
    """SIFT descriptors (N, 128) float32 of frames (octave pixels, float64; ``theta`` in radians).
    A frame whose rounded centre lies on the last row gets zeros (VLFeat computes nothing)."""
    normalised = _normalise(_descriptor_histograms(x, y, sigma, level, theta, modulus, angle))
    return _normalise(np.minimum(normalised, np.float32(DESCRIPTOR_CLIP)))


def _descriptor_histograms(x, y, sigma, level, theta, modulus, angle):
    """The unnormalised 4 x 4 x 8 histograms, accumulated in float32 in VLFeat's order."""
    _, height, width = modulus.shape
    centre_x, centre_y = (x + 0.5).astype(np.intp), (y + 0.5).astype(np.intp)
    bin_width = BIN_MAGNIFICATION * sigma + DOUBLE_EPSILON
    radius = np.floor(np.sqrt(2.0) * bin_width * (SPATIAL_BINS + 1) / 2.0 + 0.5).astype(np.intp)
    radius[centre_y >= height - 1] = -1          # no window: VLFeat skips these frames
    cos_theta, sin_theta = np.cos(theta), np.sin(theta)
    slots = PADDED_BINS * PADDED_BINS * ANGLE_BINS
    reach = SPATIAL_BINS / 2 + 0.5               # |n| >= reach: all 4 spatial votes miss the grid
    histograms = np.zeros((len(x), slots), dtype=np.float32)
    for members, offsets in _window_groups(radius):
        px, py, pixel = _window_pixels(centre_x[members], centre_y[members], level[members],
                                       offsets, modulus.shape)
        dx = (px - x[members, None, None]).astype(np.float32).astype(np.float64)
        dy = (py - y[members, None, None]).astype(np.float32).astype(np.float64)
        c, s, w = (v[members, None, None] for v in (cos_theta, sin_theta, bin_width))
        # position in the keypoint's rotated frame, in spatial bins (float32)
        nx = ((c * dx + s * dy) / w).astype(np.float32)
        ny = ((-s * dx + c * dy) / w).astype(np.float32)
        useful = ((nx >= -reach) & (nx < reach) & (ny >= -reach) & (ny < reach)
                  & (px >= 1) & (px <= width - 2) & (py >= 1) & (py <= height - 2))
        sample = np.flatnonzero(useful)
        member = sample // len(offsets) ** 2
        nx, ny, pixel = nx.ravel()[sample], ny.ravel()[sample], pixel.ravel()[sample]

        relative_angle = angle.ravel()[pixel].astype(np.float64) - theta[members][member]
        relative_angle = mod_2pi(relative_angle.astype(np.float32))
        nt = ((ANGLE_BINS * relative_angle).astype(np.float64) / TWO_PI).astype(np.float32)
        squared_norm = (nx * nx + ny * ny).astype(np.float64)
        window = fast_expn(squared_norm / (2.0 * DESCRIPTOR_WINDOW * DESCRIPTOR_WINDOW))
        base = window.astype(np.float32) * modulus.ravel()[pixel]
        first_x, first_y = np.floor(nx - np.float32(0.5)), np.floor(ny - np.float32(0.5))
        first_t = np.floor(nt)
        # the 8 votes of each pixel, in VLFeat's order (x step, y step, angle step), weigh
        # base * w_x * w_y * w_t, where the lower and upper bin along an axis get |1 - share|
        # and |share|
        share_x = (nx.astype(np.float64) - (first_x + 0.5)).astype(np.float32)
        share_y = (ny.astype(np.float64) - (first_y + 0.5)).astype(np.float32)
        share_t = nt - first_t
        votes = [base]
        for share in (share_x, share_y, share_t):
            lower_and_upper = (np.abs(1 - share), np.abs(share))
            votes = [vote * weight for vote in votes for weight in lower_and_upper]
        angle_bin = first_t.astype(np.intp) % ANGLE_BINS
        first_slot = ((member * PADDED_BINS + first_y.astype(np.intp) + PADDED_OFFSET) * PADDED_BINS
                      + first_x.astype(np.intp) + PADDED_OFFSET) * ANGLE_BINS + angle_bin
        slot = np.take(VOTE_SLOT_STEPS, (angle_bin == ANGLE_BINS - 1).astype(np.intp), axis=0)
        slot += first_slot[:, None]
        batch = np.zeros(len(members) * slots, dtype=np.float32)
        np.add.at(batch, slot.ravel(), np.stack(votes, axis=1).ravel())
        histograms[members] = batch.reshape(len(members), slots)
    histograms = histograms.reshape(len(x), PADDED_BINS, PADDED_BINS, ANGLE_BINS)
    return np.ascontiguousarray(histograms[:, 1:-1, 1:-1]).reshape(len(x), DESCRIPTOR_SIZE)


def _normalise(descriptors):
    """Divide each row by its float32 L2 norm (VLFeat's fast sqrt) plus float epsilon."""
    squared_norm = np.cumsum(descriptors * descriptors, axis=1)[:, -1:]
    return descriptors / (fast_sqrt(squared_norm) + FLOAT_EPSILON)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def sift(image, first_octave=0, levels_per_octave=3, num_octaves=None, peak_thresh=0.0,
         edge_thresh=10.0):
    """VLFeat SIFT frames and descriptors of a greyscale (or colour, converted) 0..255 image.

    Returns ``frames`` (N, 4) float32 [x, y, sigma, angle] and ``descriptors`` (N, 128) float32,
    one row per keypoint orientation, in VLFeat's order (octave, detection, orientation).
    ``num_octaves=None`` takes VLFeat's default max(floor(log2(min(H, W))) - first_octave - 3, 1).
    Raises ValueError on a bad image (see :mod:`minifeat.image`) or parameter.
    """
    pixels = as_grey_float(image, "sift", min_side=2)
    _check_parameters(first_octave, levels_per_octave, num_octaves, peak_thresh, edge_thresh)
    space = ScaleSpace(*pixels.shape, first_octave, levels_per_octave, num_octaves)
    frames, descriptors = [], []
    for octave, levels in space.octaves(pixels):
        octave_frames, octave_descriptors = _octave_features(space, octave, levels, peak_thresh,
                                                             edge_thresh)
        frames.append(octave_frames)
        descriptors.append(octave_descriptors)
    return np.concatenate(frames), np.concatenate(descriptors)


def _octave_features(space, octave, levels, peak_thresh, edge_thresh):
    """Frames and descriptors of one octave of the Gaussian scale space."""
    scale = 2.0 ** octave
    dog = levels[1:] - levels[:-1]
    candidates = _local_extrema(dog, peak_thresh)
    level, refined = refine_keypoints(dog, *candidates, peak_thresh, edge_thresh)
    # the keypoint as VLFeat stores it: float32, in image pixels
    x = (refined[:, 0] * scale).astype(np.float32)
    y = (refined[:, 1] * scale).astype(np.float32)
    sigma = (space.sigma0 * 2.0 ** (refined[:, 2] / space.levels) * scale).astype(np.float32)
    # orientations and descriptors work in octave pixels on the gradients of levels 0 ... S - 1
    octave_x, octave_y, octave_sigma = (v.astype(np.float64) / scale for v in (x, y, sigma))
    modulus, angle = polar_gradients(levels[-FIRST_LEVEL:space.levels - FIRST_LEVEL])
    keypoint, theta = keypoint_orientations(octave_x, octave_y, octave_sigma, level, modulus, angle)
    descriptors = keypoint_descriptors(octave_x[keypoint], octave_y[keypoint],
                                       octave_sigma[keypoint], level[keypoint], theta,
                                       modulus, angle)
    frames = np.stack([x[keypoint], y[keypoint], sigma[keypoint], theta.astype(np.float32)],
                      axis=1)
    return frames, descriptors


def _check_parameters(first_octave, levels_per_octave, num_octaves, peak_thresh, edge_thresh):
    """Raise ValueError on parameters VLFeat's SIFT cannot use."""
    if (isinstance(first_octave, (bool, np.bool_))
            or not isinstance(first_octave, (int, np.integer))):
        raise ValueError(f"sift: first_octave must be an integer, got {first_octave!r}")
    check_positive_int(levels_per_octave, "levels_per_octave", "sift")
    if num_octaves is not None:
        check_positive_int(num_octaves, "num_octaves", "sift")
    if not (_is_finite_number(peak_thresh) and peak_thresh >= 0):
        raise ValueError(f"sift: peak_thresh must be a finite number >= 0, got {peak_thresh!r}")
    if not (_is_finite_number(edge_thresh) and edge_thresh > 0):
        raise ValueError(f"sift: edge_thresh must be a finite number > 0, got {edge_thresh!r}")


def _is_finite_number(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value)))


def sift_map(image, cell_size=4):
    """The paper's SIFT map (H // cell_size, W // cell_size, 133) float32 of a 0..255 image."""
    check_positive_int(cell_size, "cell_size", "sift_map")
    pixels = as_grey_float(image, "sift_map", min_side=2)
    frames, descriptors = sift(pixels)
    return sift_map_from_frames(frames, descriptors, pixels.shape, cell_size)


def sift_map_from_frames(frames, descriptors, image_shape, cell_size=4):
    """Build the SIFT map from frames and descriptors in VLFeat's order.

    A keypoint's orientations are consecutive frames sharing x, y and sigma; only the first is
    used. (Two distinct keypoints with identical x, y and sigma, which refinement can produce,
    have identical orientations, so merging them changes nothing.) Cell
    (y // cell_size, x // cell_size) gets [descriptor, sin angle, cos angle, x mod cell_size,
    y mod cell_size, log sigma]; the last keypoint wins a shared cell; other cells are 0.
    """
    rows, columns = image_shape[0] // cell_size, image_shape[1] // cell_size
    starts_keypoint = np.ones(len(frames), dtype=bool)
    starts_keypoint[1:] = np.any(frames[1:, :3] != frames[:-1, :3], axis=1)
    x, y, sigma, theta = frames[starts_keypoint].astype(np.float64).T
    cell_x, cell_y = np.floor(x / cell_size), np.floor(y / cell_size)
    geometry = np.stack([np.sin(theta), np.cos(theta), x - cell_size * cell_x,
                         y - cell_size * cell_y, np.log(sigma)], axis=1)
    values = np.concatenate([descriptors[starts_keypoint], geometry], axis=1)
    on_grid = (cell_x < columns) & (cell_y < rows)
    cell = (cell_y * columns + cell_x).astype(np.intp)[on_grid]
    values = values[on_grid]
    # the last keypoint in a cell wins: keep each cell's last occurrence
    _, last_from_end = np.unique(cell[::-1], return_index=True)
    winners = len(cell) - 1 - last_from_end
    feature_map = np.zeros((rows * columns, MAP_CHANNELS), dtype=np.float32)
    feature_map[cell[winners]] = values[winners]
    return feature_map.reshape(rows, columns, MAP_CHANNELS)
