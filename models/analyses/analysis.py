"""The paper's analyses of a trained decoder: what its input features still tell (the paper's analysis section).

The functions on feature arrays take and return host NumPy arrays (N, ...), as the encoder gives
them; the ``*_images`` functions run one analysis end to end with a
:class:`models.evaluation.inference.TrainedDecoder` and return what a figure shows.

- Perturbations [P], decoded by the decoder trained on clean features:
  :func:`binarize` sets every non-zero unit of a vector to one constant, the mean of that vector's
  non-zero values (what is left is *which* units are active); :func:`drop_units` sets a random
  fraction (50%) of the units to 0, independently per vector [D: the kept units are not rescaled].
- Dark knowledge (supplementary Fig. 3): :func:`top_k_split` gives the vector with only its k = 5
  largest values (the rest 0), and the vector with those k set to 0.
- Single neurons (supplementary Fig. 4): :func:`single_units`, one unit at ``value``, the rest 0.
- Interpolation (Figs. 6, 7): :func:`interpolate`, (1 - t) a + t b for t = 0, 1/(n-1), ..., 1.
- Random feature vectors (Figs. 8-10), fitted to a set of features F (N, D):
  :class:`HistogramModel` draws each dimension independently from its empirical histogram: an atom
  at exactly 0 with the observed frequency of zeros (ReLU units are 0 much of the time), and
  ``bins`` equal bins over the range of the non-zero values, uniform inside a bin.
  :class:`TruncatedGaussian` draws x = max(0, mu + C^T z / sqrt(N - 1)), z ~ N(0, I_N), C the
  centred features: a Gaussian with exactly the empirical mean mu and covariance C^T C / (N - 1),
  drawn without forming the D x D covariance, negatives set to 0. Per dimension, with sigma^2 the
  variance, its mean is E[max(0, y)] = mu Phi(mu / sigma) + sigma phi(mu / sigma).
"""
import math

import numpy as np
from scipy import special

from nn.errors import OptionError

from ..data.images import ImageError, find_images
from ..scoring.metrics import normalized_error

TOP_K = 5


# --- operations on feature vectors ------------------------------------------------------------------

def _flat(features):
    features = np.asarray(features, np.float32)
    return features.reshape(len(features), -1), features.shape


def binarize(features):
    """Each vector's non-zero units set to the mean of its non-zero values; zeros stay 0."""
    flat, shape = _flat(features)
    active = flat != 0
    level = np.where(active, flat, 0).sum(1) / np.maximum(active.sum(1), 1)
    return np.where(active, level[:, None], 0).astype(np.float32).reshape(shape)


def drop_units(features, fraction, rng):
    """A random ``fraction`` of each vector's units set to 0 (``rng``: a NumPy Generator)."""
    flat, shape = _flat(features)
    keep = rng.random(flat.shape) >= fraction
    return (flat * keep).reshape(shape)


PERTURBATIONS = {
    "binarized": lambda features, rng: binarize(features),
    "dropped 50%": lambda features, rng: drop_units(features, 0.5, rng),
}


def top_k_split(features, k=TOP_K):
    """(only the k largest values of each vector, the rest 0; each vector with its k largest set to 0)."""
    flat, shape = _flat(features)
    top = np.zeros(flat.shape, bool)
    np.put_along_axis(top, np.argsort(-flat, axis=1)[:, :k], True, axis=1)
    return np.where(top, flat, 0).reshape(shape), np.where(top, 0, flat).reshape(shape)


def single_units(size, indices, value):
    """(len(indices), size) vectors: row i is ``value`` at unit ``indices[i]`` and 0 elsewhere."""
    indices = [int(i) for i in indices]
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        raise OptionError(f"unit index {bad[0]} out of range: the layer has {size} units (0..{size - 1})")
    vectors = np.zeros((len(indices), size), np.float32)
    vectors[np.arange(len(indices)), indices] = value
    return vectors


def interpolate(a, b, steps):
    """(steps, ...) features (1 - t) a + t b, t from 0 to 1; the first is ``a``, the last ``b``."""
    if steps < 2:
        raise OptionError(f"interpolation needs at least 2 steps (the two endpoints), got {steps}")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32).reshape((steps,) + (1,) * np.ndim(a))
    return ((1 - t) * a + t * b).astype(np.float32)


class HistogramModel:
    """Each dimension independently from its empirical histogram (see the module docstring)."""

    def __init__(self, features, bins=32):
        flat, shape = _flat(features)
        self.shape = shape[1:]
        nonzero = flat != 0
        self.zero_fraction = 1 - nonzero.mean(0)
        self.low = np.where(nonzero, flat, np.inf).min(0)
        self.high = np.where(nonzero, flat, -np.inf).max(0)
        self.low[~np.isfinite(self.low)] = 0       # dimensions that are always 0
        self.high = np.maximum(self.high, self.low)
        self.width = (self.high - self.low) / bins
        position = np.where(self.width > 0, (flat - self.low) / np.where(self.width > 0, self.width, 1), 0)
        which = np.clip(position.astype(int), 0, bins - 1)
        counts = np.stack([((which == b) & nonzero).sum(0) for b in range(bins)], axis=1)
        self.bin_probabilities = counts / np.maximum(counts.sum(1, keepdims=True), 1)

    def mean(self):
        """The expected value of each dimension under the model."""
        centres = self.low[:, None] + self.width[:, None] * (np.arange(self.bin_probabilities.shape[1]) + 0.5)
        return ((1 - self.zero_fraction) * (self.bin_probabilities * centres).sum(1)).reshape(self.shape)

    def sample(self, count, rng):
        """(count, ...) vectors; ``rng`` a NumPy Generator."""
        dims = len(self.low)
        cumulative = np.cumsum(self.bin_probabilities, axis=1)
        u = rng.random((count, dims, 1))
        which = np.minimum((u > cumulative[None]).sum(-1), cumulative.shape[1] - 1)
        values = self.low + self.width * (which + rng.random((count, dims)))
        zero = rng.random((count, dims)) < self.zero_fraction
        return np.where(zero, 0, values).astype(np.float32).reshape((count,) + self.shape)


class TruncatedGaussian:
    """The empirical mean and covariance as a Gaussian, negatives set to 0 (see the module docstring)."""

    def __init__(self, features):
        flat, shape = _flat(features)
        if len(flat) < 2:
            raise OptionError(f"a covariance needs at least 2 feature vectors, got {len(flat)}")
        self.shape = shape[1:]
        flat = flat.astype(np.float64)
        self.mu = flat.mean(0)
        self.centred = flat - self.mu
        self.sigma = self.centred.std(0, ddof=1)

    def mean(self):
        """E[max(0, y)] per dimension for y ~ N(mu, sigma^2)."""
        ratio = self.mu / np.where(self.sigma > 0, self.sigma, 1)
        pdf = np.exp(-0.5 * ratio ** 2) / math.sqrt(2 * math.pi)
        value = np.where(self.sigma > 0, self.mu * special.ndtr(ratio) + self.sigma * pdf, np.maximum(self.mu, 0))
        return value.reshape(self.shape)

    def sample(self, count, rng):
        z = rng.standard_normal((count, len(self.centred)))
        y = self.mu + z @ self.centred / math.sqrt(len(self.centred) - 1)
        return np.maximum(y, 0).astype(np.float32).reshape((count,) + self.shape)


RANDOM_MODELS = {"histogram": HistogramModel, "gaussian": TruncatedGaussian}


# --- the analyses with a trained decoder ------------------------------------------------------------

def photo_batches(trained, folder, batch_size=32):
    """Yield batches of the usable photos in ``folder`` (centre squares, (B, S, S, 3) uint8)."""
    files = find_images(folder)
    for i in range(0, len(files), batch_size):
        photos, _, _ = trained.photos(files[i:i + batch_size])
        if photos is not None:
            yield photos


def folder_features(trained, folder):
    """The features of every usable photo in ``folder`` (N, ...)."""
    features = [trained.encoder.features(photos) for photos in photo_batches(trained, folder)]
    if not features:
        raise ImageError(f"{folder}: no usable photo to compute features from")
    return np.concatenate(features)


def perturbed_reconstructions(trained, features, rng):
    """{perturbation name: the reconstructions from the perturbed ``features``}."""
    return {name: trained.decode(perturb(features, rng)) for name, perturb in PERTURBATIONS.items()}


def perturbation_images(trained, photos, seed=0):
    """Rows (target, clean, binarized, dropped 50%) for ``photos``, and the error of each column."""
    features = trained.encoder.features(photos)
    targets = trained.encoder.targets(photos)
    decoded = dict(clean=trained.decode(features),
                   **perturbed_reconstructions(trained, features, np.random.default_rng(seed)))
    rows = [[target] + [d[i] for d in decoded.values()] for i, target in enumerate(targets)]
    errors = {name: normalized_error(targets.astype(np.float32), d) for name, d in decoded.items()} \
        if len(photos) >= 2 else {}
    return rows, errors


def perturbation_errors(trained, folder, seed=0):
    """The normalised error of each perturbation on the photos of ``folder``."""
    rng = np.random.default_rng(seed)
    targets, recons = [], {name: [] for name in PERTURBATIONS}
    for photos in photo_batches(trained, folder):
        targets.append(trained.encoder.targets(photos))
        for name, decoded in perturbed_reconstructions(trained, trained.encoder.features(photos), rng).items():
            recons[name].append(decoded)
    if not targets:
        raise ImageError(f"{folder}: no usable photo to evaluate on")
    targets = np.concatenate(targets).astype(np.float32)
    return {name: normalized_error(targets, np.concatenate(r)) for name, r in recons.items()}


def _require_vectors(trained, what):
    if len(trained.config["feature_shape"]) != 1:
        raise OptionError(f"{what} needs a decoder of a fully connected layer (fc6, fc7, fc8), "
                         f"not {trained.feature}")
    return trained.config["feature_shape"][0]


def dark_knowledge_images(trained, photos, k=TOP_K):
    """Rows (target, all features, only the top k, all but the top k) and the three feature sets."""
    _require_vectors(trained, "dark knowledge")
    features = trained.encoder.features(photos)
    only_top, without_top = top_k_split(features, k)
    sets = {"all": features, f"top {k}": only_top, f"all but top {k}": without_top}
    decoded = [trained.decode(f) for f in sets.values()]
    rows = [[target] + [d[i] for d in decoded] for i, target in enumerate(trained.encoder.targets(photos))]
    return rows, sets


def default_unit_value(trained):
    """The value of a lone active unit when none is given (a project decision; the paper is silent): the one that gives the vector the L2
    norm of an average training feature vector, sqrt(D) x RMS = sqrt(D) / feature_scale."""
    return math.sqrt(_require_vectors(trained, "a single neuron")) / trained.scale


def single_neuron_images(trained, indices, value=None):
    """(images (len(indices), T, T, 3), the vectors): each vector has one unit active."""
    size = _require_vectors(trained, "a single neuron")
    vectors = single_units(size, indices, default_unit_value(trained) if value is None else value)
    return trained.decode(vectors), vectors


def interpolation_images(trained, photo_a, photo_b, steps):
    """(images (steps, T, T, 3), features): the decoded interpolation between two photos' features.

    Each step is decoded on its own, so the endpoints equal exactly the decoding of each photo's
    features alone.
    """
    features = trained.encoder.features(np.stack([photo_a, photo_b]))
    path = interpolate(features[0], features[1], steps)
    return np.concatenate([trained.decode(f[None]) for f in path]), path


def random_feature_images(trained, folder, method, count, seed=0, bins=32):
    """(images (count, T, T, 3), sampled features, the fitted model) for vectors drawn from
    ``method`` (``histogram`` or ``gaussian``) fitted to the features of the photos in ``folder``."""
    if method not in RANDOM_MODELS:
        raise OptionError(f"unknown method {method!r}; expected one of {', '.join(RANDOM_MODELS)}")
    features = folder_features(trained, folder)
    model = HistogramModel(features, bins) if method == "histogram" else TruncatedGaussian(features)
    samples = model.sample(count, np.random.default_rng(seed))
    return trained.decode(samples), samples, model
