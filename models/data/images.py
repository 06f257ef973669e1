"""Reading photos, resizing and cropping them (figures are in :mod:`models.display.figures`).

Images are (H, W, 3) uint8 RGB in memory. Resizing is antialiased bilinear: when shrinking, the
image is first blurred with a Gaussian of sigma = (factor - 1) / 2 so that detail finer than the
new pixel grid does not alias, then sampled bilinearly at the new pixel centres.
"""
import errno
import os
import warnings

import numpy as np
from scipy import ndimage

from nn.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MIN_SIDE = 32
MAX_PIXELS = 40_000_000  # a larger photo is refused (decoding and blurring it takes minutes and GBs)


class ImageError(UserError):
    """A photo that cannot be used (unreadable, truncated, greyscale, too small); names the file."""


def find_images(folder):
    """Every JPEG or PNG below ``folder`` (recursively, as ImageNet's train folder), sorted."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "no such folder; pass --data with a folder of JPEG or PNG photos", folder)
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(root, n))]  # not a FIFO or device named *.jpg
    return sorted(found)


def header_problem(path):
    """Why the photo at ``path`` is unusable, judged from its header alone (fast: no decoding), or
    None: not a regular file, not an image, too small or too large. ``read_image`` may still find
    the rest of the file broken."""
    from PIL import Image
    if not os.path.isfile(path):
        return f"{path}: not a regular file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                width, height = image.size
    except Exception as exc:  # Pillow raises many types for broken headers
        return f"{path}: unreadable image ({type(exc).__name__}: {exc})"
    if min(width, height) < MIN_SIDE:
        return f"{path}: {width}x{height} pixels is too small (less than {MIN_SIDE} px)"
    if width * height > MAX_PIXELS:
        return f"{path}: {width}x{height} pixels, more than the {MAX_PIXELS // 10 ** 6}-megapixel limit"
    return None


def read_image(path):
    """(H, W, 3) uint8 RGB; raises :class:`ImageError` naming the file for anything unusable.

    What the header tells is checked first (:func:`header_problem`: not a regular file, too small,
    above MAX_PIXELS). CMYK JPEGs (ImageNet has a few) are converted to RGB by Pillow, which knows
    their inverted Adobe variant."""
    import imageio.v3 as iio
    from PIL import Image
    problem = header_problem(path)
    if problem:
        raise ImageError(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as probe:
                cmyk = probe.mode == "CMYK"
                image = np.asarray(probe.convert("RGB")) if cmyk else np.asarray(iio.imread(path))
    except Exception as exc:  # Pillow and imageio raise many types for broken files
        raise ImageError(f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc})") from None
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"{path}: greyscale or unusual image of shape {image.shape}; "
                         "the decoders reconstruct colour photos (RGB)")
    if image.dtype != np.uint8:
        image = np.clip(image / (257.0 if image.dtype == np.uint16 else 1.0), 0, 255).astype(np.uint8)
    return image


def resize(image, height, width):
    """Antialiased bilinear resize of an (H, W, C) image to (height, width, C), same dtype."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    pixels = image.astype(np.float32)
    factors = (h / height, w / width)
    sigmas = [max(0.0, (f - 1) / 2) for f in factors] + [0.0]
    if max(sigmas) > 0:
        pixels = ndimage.gaussian_filter(pixels, sigmas, mode="nearest")
    rows = (np.arange(height) + 0.5) * factors[0] - 0.5
    cols = (np.arange(width) + 0.5) * factors[1] - 0.5
    grid = np.meshgrid(rows, cols, indexing="ij")
    out = np.stack([ndimage.map_coordinates(pixels[:, :, c], grid, order=1, mode="nearest")
                    for c in range(pixels.shape[2])], axis=-1)
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(image.dtype)


def center_square(image, size):
    """Resize the short side to ``size`` and cut the central size x size square (as the paper prepares its photos)."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    image = resize(image, max(size, round(h * scale)), max(size, round(w * scale)))
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]


def to_uint8(images):
    """Float images (any range near 0..255) to uint8, clipped."""
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def crop_box(shape, rng, min_scale):
    """A random square inside an image of ``shape`` (H, W, ...): (top, left, side), the side a uniform
    fraction in [min_scale, 1] of the short side, the position uniform over the image."""
    h, w = shape[:2]
    side = max(1, int(round(min(h, w) * rng.uniform(min_scale, 1.0))))
    return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side


def random_crops(image, size, count, rng, min_scale=0.5, flip=True, colour_jitter=0.0):
    """``count`` random square crops of ``image`` at several scales, each resized to size x size and,
    with ``flip``, mirrored left-right with probability 1/2: (count, size, size, 3) uint8.

    Crops of the full-resolution photo show its objects at several sizes and positions, so a small
    set of photos gives many different training samples; ``rng`` (a NumPy Generator) decides all.
    ``colour_jitter`` = j > 0 multiplies each colour channel of a crop by exp(u), u uniform in
    [-j, j], so that a decoder cannot learn a photo's exact palette by heart.
    """
    crops = []
    for _ in range(count):
        top, left, side = crop_box(image.shape, rng, min_scale)
        crop = resize(image[top:top + side, left:left + side], size, size)
        if flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        if colour_jitter:
            gains = np.exp(rng.uniform(-colour_jitter, colour_jitter, 3)).astype(np.float32)
            crop = to_uint8(crop * gains)
        crops.append(crop)
    return np.stack(crops)
