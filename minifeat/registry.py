"""The paper's shallow representations by name, and their parallel extraction over many images.

``DESCRIPTORS`` maps each name to how the paper computes it (its section on the representations): VLFeat's
features with default settings on the *greyscale* image (colour input is converted with
:func:`minifeat.image.to_grey` first; values on the 0..255 scale, see :mod:`minifeat.image`).

=====  =====================================  ===========================  ===============
name   definition                             map for an (H, W) image      256 x 256
=====  =====================================  ===========================  ===============
hog    ``hog(grey, 8, 9, "uoctti")``          ((H+4)//8, (W+4)//8, 31)     32 x 32 x 31
lbp    ``lbp(grey, 16)``                      (H//16, W//16, 58)           16 x 16 x 58
sift   ``sift_map(grey, 4)``                  (H//4, W//4, 133)            64 x 64 x 133
=====  =====================================  ===========================  ===============

:func:`extract` computes one representation for a batch (N, H, W[, 3]) of images in parallel
processes and returns a float32 array (N, *feature_shape(name, (H, W))).
"""
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from minifeat.hog import hog, hog_dimension, hog_grid_shape
from minifeat.image import as_grey_float, check_positive_int
from minifeat.lbp import NUM_BINS as LBP_BINS
from minifeat.lbp import lbp, lbp_grid_shape
from minifeat.sift import MAP_CHANNELS as SIFT_MAP_CHANNELS
from minifeat.sift import sift_map

HOG_CELL_SIZE = 8
LBP_CELL_SIZE = 16
SIFT_CELL_SIZE = 4


@dataclass(frozen=True)
class Descriptor:
    """A named shallow feature: how to compute it on one image, and the shape of its map.

    (The decoders' side, the paper's eleven representations with their decoder tables, is
    ``models.networks.decoders.REPRESENTATIONS``; its shallow entries ask this table.)"""
    name: str
    compute: Callable    # image (H, W[, 3]) -> float32 map (rows, columns, channels)
    grid_shape: Callable  # (H, W) -> (rows, columns)
    channels: int
    description: str


def _grey(image, name):
    """The greyscale float32 version of ``image``; size checks are left to the feature."""
    return as_grey_float(image, f"minifeat.extract({name!r})", min_side=1)


def hog_of_grey(image):
    return hog(_grey(image, "hog"), HOG_CELL_SIZE, 9, "uoctti")


def lbp_of_grey(image):
    return lbp(_grey(image, "lbp"), LBP_CELL_SIZE)


def sift_map_of_grey(image):
    return sift_map(_grey(image, "sift"), SIFT_CELL_SIZE)


def sift_grid_shape(image_size):
    return image_size[0] // SIFT_CELL_SIZE, image_size[1] // SIFT_CELL_SIZE


DESCRIPTORS = {
    descriptor.name: descriptor for descriptor in (
        Descriptor("hog", hog_of_grey, partial(hog_grid_shape, cell_size=HOG_CELL_SIZE),
                       hog_dimension(9, "uoctti"),
                       "VLFeat HOG, UoCTTI variant, 9 orientations, 8-pixel cells"),
        Descriptor("lbp", lbp_of_grey, partial(lbp_grid_shape, cell_size=LBP_CELL_SIZE),
                       LBP_BINS, "VLFeat uniform LBP, 58 patterns, 16-pixel cells"),
        Descriptor("sift", sift_map_of_grey, sift_grid_shape, SIFT_MAP_CHANNELS,
                       "VLFeat SIFT keypoints and descriptors placed on a grid of 4-pixel cells"),
    )
}


def descriptor(name):
    """The :class:`Descriptor` called ``name``; ValueError naming the known ones otherwise."""
    if name not in DESCRIPTORS:
        raise ValueError(f"minifeat: unknown representation {name!r}; "
                         f"known: {sorted(DESCRIPTORS)}")
    return DESCRIPTORS[name]


def feature_shape(name, image_size):
    """Shape (rows, columns, channels) of representation ``name`` for images of size (H, W)."""
    chosen = descriptor(name)
    height, width = image_size
    return (*chosen.grid_shape((height, width)), chosen.channels)


def compute(name, image):
    """Representation ``name`` of one image, as the paper computes it (on the greyscale image)."""
    return descriptor(name).compute(image)


def extract(name, images, workers=None):
    """Representation ``name`` of every image: float32 (N, *feature_shape(name, (H, W))).

    ``images`` is an array (N, H, W[, 3]) or a sequence of N images of one shape. The images
    are shared among ``workers`` processes (default: one per CPU core); ``workers=1`` computes
    them in this process, one after the other. The result does not depend on ``workers``.
    """
    descriptor(name)
    compute_one = partial(compute, name)
    images = list(images)
    if not images:
        raise ValueError("minifeat.extract: no images given")
    shapes = {np.shape(image) for image in images}
    if len(shapes) > 1:
        raise ValueError(f"minifeat.extract: images must all have one shape, got {sorted(shapes)}")
    workers = os.cpu_count() if workers is None else workers
    check_positive_int(workers, "workers", "minifeat.extract")
    workers = min(workers, len(images))
    if workers == 1:
        features = [compute_one(image) for image in images]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            features = list(pool.map(compute_one, images,
                                     chunksize=max(1, len(images) // (4 * workers))))
    return np.stack(features).astype(np.float32, copy=False)
