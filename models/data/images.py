"""Reading photos, resizing and cropping them (figures are in :mod:`models.display.figures`).

Images are (H, W, 3) uint8 RGB in memory. Resizing is antialiased bilinear: when shrinking, the
image is first blurred with a Gaussian of sigma = (factor - 1) / 2 so that detail finer than the
new pixel grid does not alias, then sampled bilinearly at the new pixel centres.

Every command reads photos through :func:`read_image` alone, which takes photos as people have
them: turned upright by their EXIF orientation, greyscale, palette, 16-bit, CMYK or with an alpha
channel, and refuses, before decoding anything, what would cost more than a photo should.
"""
import errno
import os
import stat
import warnings

import numpy as np
from scipy import ndimage

from nn.errors import UserError
from nn.serialization import printable, special_file_kind

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MIN_SIDE = 32
MAX_PIXELS = 40_000_000  # a larger photo is refused (decoding and blurring it takes minutes and GBs)
# The only decoders of Pillow a photo may reach (a file's name does not choose its decoder, its bytes
# do; Pillow's others include EPS, which runs Ghostscript on the file). JPEG includes the MPO of phones.
FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP", "WEBP")
ORIENTATION_TAG = 0x0112
class ImageError(UserError):
    """A photo that cannot be used (unreadable, truncated, too small, too large); names the file."""


def file_problem(path):
    """Why ``path`` cannot be read as a photo file, or None. Only a regular file is read: a FIFO
    would block the reader for ever, a device can stream without end, a folder or a socket is no
    photo. One check for every reader (:func:`find_images`, :func:`header_problem`, :func:`read_image`)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return f"{printable(path)}: no such file"
        return f"{printable(path)}: cannot be read ({exc.strerror}); check its permissions"
    kind = special_file_kind(mode)
    if kind is not None:
        return f"{printable(path)}: {kind}, not a regular file; pass photo files (JPEG or PNG)"
    return None


def find_images(folder):
    """Every JPEG or PNG below ``folder`` (recursively, as ImageNet's train folder), sorted; a FIFO,
    device or socket named like a photo is left out. Names need not be UTF-8."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "no such folder; pass --data with a folder of JPEG or PNG photos",
                                printable(folder))
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)
                  and file_problem(os.path.join(root, n)) is None]
    return sorted(found)


def _open_file(path):
    """The photo file ``path`` opened for binary reading; raises :class:`ImageError` unless it is a
    regular file (checked again on the open file, so a FIFO swapped in meanwhile is not waited on)."""
    problem = file_problem(path)
    if problem:
        raise ImageError(problem)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ImageError(f"{printable(path)}: cannot be opened ({exc.strerror}); check its permissions") from None
    file = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        file.close()
        raise ImageError(f"{printable(path)}: not a regular file; pass photo files (JPEG or PNG)")
    return file


def _open_image(path, file):
    """Pillow's lazy image of ``file`` (nothing decoded yet), its declared size checked."""
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(file, formats=FORMATS)
    except Exception as exc:  # Pillow raises many types for broken headers
        raise ImageError(f"{printable(path)}: unreadable image ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{printable(path)}: {width}x{height} pixels is too small (less than {MIN_SIDE} px)")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{printable(path)}: {width}x{height} pixels, more than the {MAX_PIXELS // 10 ** 6}-megapixel "
                         "limit; pass a smaller copy of the photo")
    return image


def header_problem(path):
    """Why the photo at ``path`` is unusable, judged from its header alone (fast: no decoding), or
    None: not a regular file, not an image, too small or too large. ``read_image`` may still find
    the rest of the file broken."""
    try:
        with _open_file(path) as file:
            _open_image(path, file)
    except ImageError as exc:
        return str(exc)
    return None


def read_image(path):
    """(H, W, 3) uint8 RGB, upright; raises :class:`ImageError` naming the file for anything unusable.

    Budgets before work: what the header declares is checked first (not a regular file, too small,
    above MAX_PIXELS), and only the first frame of a multi-frame file (an animated GIF or PNG, a
    multi-page TIFF) is decoded, the others never: a photo is one picture, and its first frame is
    what viewers show. Then, as viewers show it:

    - the EXIF orientation (values 1 to 8) is applied, so a phone's portrait photo stands upright;
    - greyscale (1-bit, 8-bit, 16-bit) and greyscale-palette photos come back with three equal
      channels (:func:`is_greyscale` tells them), which is what the features see anyway (HOG, SIFT
      and LBP are computed on the grey image);
    - palette photos are expanded to their colours; 16-bit photos are scaled to 8 bits (value / 257);
    - transparent pixels are composited on white (alpha blending, as a viewer on a white page shows them);
    - CMYK JPEGs (ImageNet has a few) are converted to RGB by Pillow, which knows their inverted
      Adobe variant.
    """
    with _open_file(path) as file:
        image = _open_image(path, file)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()  # the first frame only
                pixels = _as_rgb(image, path)
                orientation = _orientation(image)
        except ImageError:
            raise
        except Exception as exc:  # Pillow raises many types for broken files
            raise ImageError(f"{printable(path)}: unreadable or truncated image ({type(exc).__name__}: {exc})") from None
    return _upright(pixels, orientation)


def _orientation(image):
    """The EXIF orientation of ``image`` (1..8; 1 when absent or unreadable: a broken EXIF block
    leaves the pixels as stored)."""
    try:
        value = int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - any damage to the EXIF block means: no orientation
        return 1
    return value if 1 <= value <= 8 else 1


def _upright(pixels, orientation):
    """The (H, W, C) ``pixels`` stored under EXIF ``orientation`` as they are meant to be seen:
    2 mirrored, 3 turned 180 degrees, 4 flipped upside down, 5 transposed, 6 turned 90 degrees
    clockwise, 7 transposed and turned 180 degrees, 8 turned 90 degrees anticlockwise."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.transpose(1, 0, 2)  # 5; then 6 = 5 mirrored, 7 = 5 turned, 8 = 5 flipped
    flips = {2: (slice(None), slice(None, None, -1)), 3: (slice(None, None, -1), slice(None, None, -1)),
             4: (slice(None, None, -1),), 6: (slice(None), slice(None, None, -1)),
             7: (slice(None, None, -1), slice(None, None, -1)), 8: (slice(None, None, -1),)}
    return np.ascontiguousarray(pixels[flips[orientation]] if orientation in flips else pixels)


def _as_rgb(image, path):
    """(H, W, 3) uint8 of the decoded Pillow ``image`` of any photo mode (read from ``path``)."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit greyscale (Pillow's "I" holds them too)
        grey = np.asarray(image).astype(np.float32) / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        raise ImageError(f"{printable(path)}: floating-point pixels are no photo; "
                         "save it as an 8- or 16-bit image")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA")).astype(np.float32)
        alpha = rgba[:, :, 3:] / 255.0
        return np.clip(np.rint(rgba[:, :, :3] * alpha + 255.0 * (1.0 - alpha)), 0, 255).astype(np.uint8)
    return np.asarray(image.convert("RGB"))


def is_greyscale(image):
    """Whether the (H, W, 3) ``image`` has three equal channels (a grey photo, however it was stored)."""
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2]))


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
