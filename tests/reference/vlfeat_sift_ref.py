"""Test-only ctypes driver of the real VLFeat 0.9.21 SIFT (libvl, Debian package ``libvlfeat1``).

It runs VLFeat's C pipeline exactly as a C program (or the authors' Caffe layer) does on a
row-major (H, W) float image passed with ``width = W``, ``height = H``:

    f = vl_sift_new(W, H, num_octaves, levels_per_octave, first_octave)
    f->peak_thresh, f->edge_thresh = ...
    for every octave (vl_sift_process_first_octave, then vl_sift_process_next_octave):
        vl_sift_detect(f)
        for every keypoint:   n = vl_sift_calc_keypoint_orientations(f, angles, key)
            for every angle:  vl_sift_calc_keypoint_descriptor(f, descriptor, key, angle)

and returns ``(frames, descriptors)`` in minifeat's layout: frames (N, 4) float32
[x, y, sigma, angle], descriptors (N, 128) float32. The ``vl_sift_set_*`` / ``vl_sift_get_*``
accessors are inline functions of ``sift.h`` that the shared library does not export, so the
driver reads and writes the ``VlSiftFilt`` structure directly (layout of
``/usr/include/vl/sift.h``).

``LIBVL`` is None where the library is not installed; the tests then skip with ``SKIP_REASON``.
"""
import ctypes

import numpy as np

from tests.reference.vlfeat_ref import SKIP_REASON, load_libvl

VL_ERR_OK = 0

_float_p = ctypes.POINTER(ctypes.c_float)


class VlSiftKeypoint(ctypes.Structure):
    _fields_ = [("o", ctypes.c_int), ("ix", ctypes.c_int), ("iy", ctypes.c_int),
                ("is_", ctypes.c_int),
                ("x", ctypes.c_float), ("y", ctypes.c_float), ("s", ctypes.c_float),
                ("sigma", ctypes.c_float)]


class VlSiftFilt(ctypes.Structure):
    _fields_ = [("sigman", ctypes.c_double), ("sigma0", ctypes.c_double),
                ("sigmak", ctypes.c_double), ("dsigma0", ctypes.c_double),
                ("width", ctypes.c_int), ("height", ctypes.c_int), ("O", ctypes.c_int),
                ("S", ctypes.c_int), ("o_min", ctypes.c_int), ("s_min", ctypes.c_int),
                ("s_max", ctypes.c_int), ("o_cur", ctypes.c_int),
                ("temp", _float_p), ("octave", _float_p), ("dog", _float_p),
                ("octave_width", ctypes.c_int), ("octave_height", ctypes.c_int),
                ("gaussFilter", _float_p), ("gaussFilterSigma", ctypes.c_double),
                ("gaussFilterWidth", ctypes.c_size_t),
                ("keys", ctypes.POINTER(VlSiftKeypoint)), ("nkeys", ctypes.c_int),
                ("keys_res", ctypes.c_int),
                ("peak_thresh", ctypes.c_double), ("edge_thresh", ctypes.c_double),
                ("norm_thresh", ctypes.c_double), ("magnif", ctypes.c_double),
                ("windowSize", ctypes.c_double),
                ("grad", _float_p), ("grad_o", ctypes.c_int)]


def _declare_signatures(lib):
    filt_p = ctypes.POINTER(VlSiftFilt)
    key_p = ctypes.POINTER(VlSiftKeypoint)
    lib.vl_sift_new.restype = filt_p
    lib.vl_sift_new.argtypes = [ctypes.c_int] * 5
    lib.vl_sift_delete.argtypes = [filt_p]
    lib.vl_sift_process_first_octave.restype = ctypes.c_int
    lib.vl_sift_process_first_octave.argtypes = [filt_p, _float_p]
    lib.vl_sift_process_next_octave.restype = ctypes.c_int
    lib.vl_sift_process_next_octave.argtypes = [filt_p]
    lib.vl_sift_detect.argtypes = [filt_p]
    lib.vl_sift_calc_keypoint_orientations.restype = ctypes.c_int
    lib.vl_sift_calc_keypoint_orientations.argtypes = [filt_p, ctypes.POINTER(ctypes.c_double),
                                                       key_p]
    lib.vl_sift_calc_keypoint_descriptor.argtypes = [filt_p, _float_p, key_p, ctypes.c_double]


LIBVL = load_libvl(_declare_signatures)


def _require_libvl():
    if LIBVL is None:
        raise RuntimeError(SKIP_REASON)


def _octaves(image, num_octaves, levels_per_octave, first_octave, peak_thresh, edge_thresh):
    """Yield the live filter once per processed octave (the caller must not keep it)."""
    _require_libvl()
    image = np.ascontiguousarray(image, dtype=np.float32)
    height, width = image.shape
    octaves = -1 if num_octaves is None else num_octaves
    filt = LIBVL.vl_sift_new(width, height, octaves, levels_per_octave, first_octave)
    try:
        filt.contents.peak_thresh = peak_thresh
        filt.contents.edge_thresh = edge_thresh
        status = LIBVL.vl_sift_process_first_octave(filt, image.ctypes.data_as(_float_p))
        while status == VL_ERR_OK:
            yield filt
            status = LIBVL.vl_sift_process_next_octave(filt)
    finally:
        LIBVL.vl_sift_delete(filt)


def vl_sift_reference(image, first_octave=0, levels_per_octave=3, num_octaves=None,
                      peak_thresh=0.0, edge_thresh=10.0):
    """VLFeat's frames (N, 4) [x, y, sigma, angle] and descriptors (N, 128), both float32.

    A keypoint whose descriptor VLFeat declines to compute (centre on the last row) keeps the
    zero descriptor the driver clears before each call.
    """
    frames, descriptors = [], []
    angles = (ctypes.c_double * 4)()
    descriptor = (ctypes.c_float * 128)()
    for filt in _octaves(image, num_octaves, levels_per_octave, first_octave, peak_thresh,
                         edge_thresh):
        LIBVL.vl_sift_detect(filt)
        keys = filt.contents.keys
        for index in range(filt.contents.nkeys):
            key = ctypes.byref(keys[index])
            count = LIBVL.vl_sift_calc_keypoint_orientations(filt, angles, key)
            for angle in angles[:count]:
                ctypes.memset(descriptor, 0, ctypes.sizeof(descriptor))
                LIBVL.vl_sift_calc_keypoint_descriptor(filt, descriptor, key, angle)
                frames.append((keys[index].x, keys[index].y, keys[index].sigma, angle))
                descriptors.append(np.frombuffer(descriptor, dtype=np.float32).copy())
    return (np.asarray(frames, dtype=np.float32).reshape(-1, 4),
            np.asarray(descriptors, dtype=np.float32).reshape(-1, 128))


def vl_sift_gaussian_scale_space(image, first_octave=0, levels_per_octave=3, num_octaves=None):
    """VLFeat's Gaussian scale space: one float32 array (levels_per_octave + 3, h_o, w_o) per
    octave, levels s_min = -1 ... s_max = levels_per_octave + 1."""
    octaves = []
    for filt in _octaves(image, num_octaves, levels_per_octave, first_octave, 0.0, 10.0):
        f = filt.contents
        shape = (f.s_max - f.s_min + 1, f.octave_height, f.octave_width)
        size = int(np.prod(shape))
        octaves.append(np.ctypeslib.as_array(f.octave, shape=(size,)).reshape(shape).copy())
    return octaves
