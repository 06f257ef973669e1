"""The paper's normalised reconstruction error (Dosovitskiy & Brox 2016, its evaluation).

    error = mean_i ||x_i - r_i||_2  /  mean_{i != j} ||x_i - x_j||_2

over RGB images at the decoder's output resolution: 1.0 means the reconstruction is no closer to
its image than a random other test image is. Reconstructions enter as images, on pixel values
0..255 (:func:`models.data.encoders.float_to_images` clips the decoders' output, as a figure shows it).
"""
import numpy as np

from nn.errors import OptionError, UserError


def mean_pairwise_distance(images):
    """Mean Euclidean distance over all ordered pairs of different images (N >= 2, not all identical).

    Identical images (one photo repeated, all black) have a mean distance of 0, which leaves the
    normalised error undefined: a ValueError, never an ``inf``."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    if len(flat) < 2:
        raise OptionError(f"normalised error needs at least 2 images, got {len(flat)}")
    if (flat == flat[0]).all():
        raise UserError(f"the normalised error is undefined: the {len(flat)} images are all identical (no distance "
                         "between them to compare with); use different photos")
    squares = (flat * flat).sum(1)
    d2 = squares[:, None] + squares[None, :] - 2 * flat @ flat.T
    distances = np.sqrt(np.maximum(d2, 0))
    n = len(flat)
    return distances.sum() / (n * (n - 1))


def reconstruction_distances(images, reconstructions):
    diff = np.asarray(images, np.float64) - np.asarray(reconstructions, np.float64)
    return np.sqrt((diff.reshape(len(diff), -1) ** 2).sum(1))


def normalized_error(images, reconstructions):
    """Mean distance image-to-reconstruction over mean distance image-to-other-image."""
    return float(reconstruction_distances(images, reconstructions).mean() / mean_pairwise_distance(images))
