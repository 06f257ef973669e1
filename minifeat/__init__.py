"""minifeat: the shallow features of the paper (VLFeat 0.9.21's HOG, LBP and SIFT) in NumPy.

Every function takes a row-major image (H, W) or (H, W, 3), integer or float, on the 0..255
scale (see :mod:`minifeat.image`), and returns float32 arrays (rows, columns, channels).

- :func:`hog`, :func:`hog_render`: ``vl_hog`` (UoCTTI or Dalal-Triggs) and its glyph picture;
- :func:`lbp`: ``vl_lbp`` with uniform patterns;
- :func:`sift`, :func:`sift_map`: ``vl_sift`` frames and descriptors, and the paper's SIFT map;
- :data:`DESCRIPTORS`, :func:`feature_shape`, :func:`extract`: the paper's settings by name
  (on the greyscale image) and their parallel computation over a batch of images.

minifeat depends on NumPy and SciPy only; it never imports the ``nn`` package.
"""
from minifeat.hog import hog, hog_render
from minifeat.image import as_float_image, as_grey_float, to_grey
from minifeat.lbp import lbp
from minifeat.registry import DESCRIPTORS, extract, feature_shape
from minifeat.sift import sift, sift_map

__all__ = ["hog", "hog_render", "lbp", "sift", "sift_map", "extract", "feature_shape",
           "DESCRIPTORS", "as_float_image", "as_grey_float", "to_grey"]
