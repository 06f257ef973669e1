"""Test-only ctypes bindings to the real VLFeat library (libvl, Debian package ``libvlfeat1``).

They call VLFeat 0.9.21's C API exactly as the paper's authors did on a row-major image and return
arrays in minifeat's layout, so that the tests and the benchmark can compare the NumPy
re-implementation with the original numbers.

Layout facts (VLFeat's C API addresses pixels as ``data[x + y*width + c*width*height]``):
- a row-major (H, W) array is passed with ``width = W``, ``height = H`` and its own buffer;
  a colour (H, W, C) image is passed as C planes, i.e. the buffer of its (C, H, W) transpose;
- features come back as ``dimension`` planes of (rows, columns) cells, i.e. a (D, H', W') buffer,
  which these functions transpose to minifeat's (H', W', D).

``LIBVL`` is None where the library is not installed; the tests then skip.
"""
import ctypes
import ctypes.util

import numpy as np

LIBVL_FALLBACKS = ("libvl.so.1", "/usr/lib/x86_64-linux-gnu/libvl.so.1")
SKIP_REASON = "libvl (Debian libvlfeat1) not installed: apt-get install libvlfeat1"

HOG_VARIANTS = {"dalaltriggs": 0, "uoctti": 1}  # enum VlHogVariant_
VL_LBP_UNIFORM = 0  # enum _VlLbpMappingType

_float_p = ctypes.POINTER(ctypes.c_float)
_size = ctypes.c_size_t


def load_libvl(declare_signatures):
    """The real libvl through ctypes with ``declare_signatures(lib)`` applied; None where missing."""
    for path in (ctypes.util.find_library("vl"),) + LIBVL_FALLBACKS:
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        declare_signatures(lib)
        return lib
    return None


def _declare_signatures(lib):
    lib.vl_hog_new.restype = ctypes.c_void_p
    lib.vl_hog_new.argtypes = [ctypes.c_int, _size, ctypes.c_int]
    lib.vl_hog_delete.argtypes = [ctypes.c_void_p]
    lib.vl_hog_put_image.argtypes = [ctypes.c_void_p, _float_p, _size, _size, _size, _size]
    lib.vl_hog_get_width.restype = _size
    lib.vl_hog_get_width.argtypes = [ctypes.c_void_p]
    lib.vl_hog_get_height.restype = _size
    lib.vl_hog_get_height.argtypes = [ctypes.c_void_p]
    lib.vl_hog_get_dimension.restype = _size
    lib.vl_hog_get_dimension.argtypes = [ctypes.c_void_p]
    lib.vl_hog_get_glyph_size.restype = _size
    lib.vl_hog_get_glyph_size.argtypes = [ctypes.c_void_p]
    lib.vl_hog_extract.argtypes = [ctypes.c_void_p, _float_p]
    lib.vl_hog_render.argtypes = [ctypes.c_void_p, _float_p, _float_p, _size, _size]
    lib.vl_lbp_new.restype = ctypes.c_void_p
    lib.vl_lbp_new.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.vl_lbp_delete.argtypes = [ctypes.c_void_p]
    lib.vl_lbp_get_dimension.restype = _size
    lib.vl_lbp_get_dimension.argtypes = [ctypes.c_void_p]
    lib.vl_lbp_process.argtypes = [ctypes.c_void_p, _float_p, _float_p, _size, _size, _size]


LIBVL = load_libvl(_declare_signatures)


def _pointer(array):
    return array.ctypes.data_as(_float_p)


def _require_libvl():
    if LIBVL is None:
        raise RuntimeError(SKIP_REASON)


def vl_hog_reference(image, cell_size=8, variant="uoctti", num_orientations=9):
    """``vl_hog_put_image`` and ``vl_hog_extract`` of a float (H, W[, C]) image: (H', W', D)."""
    _require_libvl()
    image = np.asarray(image, dtype=np.float32)
    planes = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    num_channels, height, width = planes.shape
    hog = LIBVL.vl_hog_new(HOG_VARIANTS[variant], num_orientations, 0)
    try:
        LIBVL.vl_hog_put_image(hog, _pointer(planes), width, height, num_channels, cell_size)
        shape = (LIBVL.vl_hog_get_dimension(hog), LIBVL.vl_hog_get_height(hog),
                 LIBVL.vl_hog_get_width(hog))
        features = np.zeros(shape, dtype=np.float32)
        LIBVL.vl_hog_extract(hog, _pointer(features))
    finally:
        LIBVL.vl_hog_delete(hog)
    return np.ascontiguousarray(features.transpose(1, 2, 0))


def vl_hog_render_reference(features, variant="uoctti", num_orientations=9):
    """``vl_hog_render`` of (H', W', D) features: the (H' * 21, W' * 21) glyph picture."""
    _require_libvl()
    cells_down, cells_across, _ = features.shape
    planes = np.ascontiguousarray(np.asarray(features, dtype=np.float32).transpose(2, 0, 1))
    hog = LIBVL.vl_hog_new(HOG_VARIANTS[variant], num_orientations, 0)
    try:
        glyph_size = LIBVL.vl_hog_get_glyph_size(hog)
        picture = np.zeros((cells_down * glyph_size, cells_across * glyph_size), dtype=np.float32)
        LIBVL.vl_hog_render(hog, _pointer(picture), _pointer(planes), cells_across, cells_down)
    finally:
        LIBVL.vl_hog_delete(hog)
    return picture


def vl_lbp_reference(image, cell_size=16):
    """``vl_lbp_process`` with ``VlLbpUniform`` of a grey float image (H, W): (H//c, W//c, 58)."""
    _require_libvl()
    image = np.ascontiguousarray(image, dtype=np.float32)
    height, width = image.shape
    lbp = LIBVL.vl_lbp_new(VL_LBP_UNIFORM, 0)
    try:
        shape = (LIBVL.vl_lbp_get_dimension(lbp), height // cell_size, width // cell_size)
        features = np.zeros(shape, dtype=np.float32)
        LIBVL.vl_lbp_process(lbp, _pointer(features), _pointer(image), width, height, cell_size)
    finally:
        LIBVL.vl_lbp_delete(lbp)
    return np.ascontiguousarray(features.transpose(1, 2, 0))
