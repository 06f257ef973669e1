"""The baselines a decoder is judged against, fitted on the decoder's own training samples.

A reconstruction error means something only beside what needs no network at all:

- **mean image**: every reconstruction is the mean training target. It knows nothing of the photo,
  so a decoder that does not beat it has learned nothing about its input.
- **linear (ridge) regression** from the features to the pixels, in closed form:

      W = argmin_W ||Y_c - X_c W||^2 + lambda ||W||^2,   r(x) = mean_y + (x - mean_x) W

  with X (N, D) the flattened features and Y (N, P) the flattened targets of N training samples,
  centred (subscript c). The features of the HOG/SIFT/LBP decoders have D ~ 10^3 to 10^5 and the
  targets P ~ 10^4, so it is solved in its dual form (kernel ridge with the linear kernel
  K = X_c X_c^T, N x N):

      W = X_c^T A,   A = (K + lambda I)^-1 Y_c = Q diag(1 / (e + lambda)) Q^T Y_c

  where K = Q diag(e) Q^T. One eigendecomposition serves every lambda, so lambda is chosen on
  held-out *training* photos (samples of about a fifth of the training photos are left out of the
  fit; the photos the decoder is validated on are never seen), then the fit is redone on all.

Both are fitted on (at most ``max_samples`` of) the training cache's samples and scored with the
paper's normalised error (:mod:`models.scoring.metrics`) on the same photos as the decoder.

A decoder file carries its baselines (:func:`baseline_arrays`): the mean image as it is, and the
ridge in a compact form, :class:`ProjectedRidge`: its predictions projected onto the top k
principal components of the training targets. Ridge is linear in Y, so this is the ridge fitted
onto those k components, W_k = X_c^T A V_k (D x k), with V_k (P x k) from the eigenvectors of
Y_c Y_c^T; it keeps D k + k P + P numbers instead of the N (D + P) of the dual form.
"""
import numpy as np

from ..data.encoders import float_to_images, targets_to_float
from .metrics import normalized_error

# Regularisation strengths tried, relative to the mean of K's diagonal (the mean squared feature norm).
RELATIVE_LAMBDAS = np.logspace(-4, 2, 13)


def _flat(array):
    """(N, ...) -> (N, -1) float32 (K and the solve are done in float64)."""
    return np.asarray(array, np.float32).reshape(len(array), -1)


class MeanImage:
    """Predicts the mean training target for every input."""

    name = "mean image"

    def fit(self, features, targets, groups=None):
        self.mean = _flat(targets).mean(0, dtype=np.float64)
        return self

    def predict(self, features):
        return np.broadcast_to(self.mean, (len(features), self.mean.size))


class RidgeRegression:
    """Linear regression with an L2 penalty, features -> pixels, solved in the dual form (see module)."""

    name = "linear (ridge)"

    def __init__(self, relative_lambdas=RELATIVE_LAMBDAS, select_fraction=0.2, seed=0):
        self.relative_lambdas = np.asarray(relative_lambdas, np.float64)
        self.select_fraction, self.seed = select_fraction, seed

    def _solve(self, x, y):
        """(mean_x, mean_y, X_c, eigenvalues, eigenvectors, Q^T Y_c) of the training samples x, y."""
        mean_x, mean_y = x.mean(0), y.mean(0)
        xc = x - mean_x
        eigenvalues, q = np.linalg.eigh((xc @ xc.T).astype(np.float64))
        return mean_x, mean_y, xc, np.maximum(eigenvalues, 0), q, q.T @ (y - mean_y)

    def fit(self, features, targets, groups=None):
        """Choose lambda on the samples of held-out groups (photos), then fit on every sample.

        features (N, ...), targets (N, ...), groups (N,): the photo each sample comes from; samples
        of one photo are held out together, so lambda is chosen for photos not fitted on.
        """
        x, y = _flat(features), _flat(targets)
        groups = np.arange(len(x)) if groups is None else np.asarray(groups)
        names = np.unique(groups)
        rng = np.random.default_rng(self.seed)
        held = rng.permutation(names)[:max(1, int(round(len(names) * self.select_fraction)))]
        select = np.isin(groups, held)
        if select.all() or not select.any() or len(names) < 2:
            self.relative_lambda = 1.0  # too few photos to choose: a middle value
        else:
            mean_x, mean_y, xc, e, q, qty = self._solve(x[~select], y[~select])
            scale = max(e.sum() / len(e), 1e-12)
            k_select = (x[select] - mean_x) @ xc.T @ q
            errors = [np.mean((k_select @ (qty / (e + r * scale)[:, None]) + mean_y - y[select]) ** 2)
                      for r in self.relative_lambdas]
            self.relative_lambda = float(self.relative_lambdas[int(np.argmin(errors))])
        self.mean_x, self.mean_y, self.xc, e, q, qty = self._solve(x, y)
        self.lambda_ = self.relative_lambda * max(e.sum() / len(e), 1e-12)
        self.dual = q @ (qty / (e + self.lambda_)[:, None])  # A = (K + lambda I)^-1 Y_c, (N, P)
        return self

    def predict(self, features):
        return ((_flat(features) - self.mean_x) @ self.xc.T) @ self.dual + self.mean_y


class ProjectedRidge:
    """A ridge regression onto the top k principal components of its training targets:
    ``(x @ weight) @ basis + offset``, weight (D, k), basis (k, P) with orthonormal rows, offset (P,)
    = mean_y - mean_x W_k V_k^T (the centring folded in, so that mean_x need not be kept)."""

    name = RidgeRegression.name

    def __init__(self, weight, basis, offset):
        self.weight, self.basis, self.offset = (np.asarray(a, np.float32) for a in (weight, basis, offset))

    @classmethod
    def from_ridge(cls, ridge, targets, components):
        """The fitted ``ridge`` projected onto the top ``components`` principal components of its
        training ``targets`` (the same samples it was fitted on; at most the rank of their Y_c)."""
        yc = _flat(targets) - ridge.mean_y
        eigenvalues, u = np.linalg.eigh((yc @ yc.T).astype(np.float64))
        top = np.argsort(eigenvalues)[::-1][:components]
        top = top[eigenvalues[top] > 1e-9 * eigenvalues.max()]  # no more components than Y_c has
        basis = ((u[:, top].T @ yc) / np.sqrt(eigenvalues[top])[:, None]).astype(np.float32)  # (k, P)
        weight = ridge.xc.T @ (ridge.dual @ basis.T).astype(np.float32)  # (D, k)
        return cls(weight, basis, ridge.mean_y - (ridge.mean_x @ weight) @ basis)

    def predict(self, features):
        return (_flat(features) @ self.weight) @ self.basis + self.offset


def baseline_arrays(models, dtype=np.float16):
    """``{"mean_image.mean": ..., "ridge.weight": ...}``: fitted baselines as a decoder file stores
    them (the ridge as a :class:`ProjectedRidge`)."""
    arrays = {"mean_image.mean": models[MeanImage.name].mean}
    ridge = models[RidgeRegression.name]
    if not isinstance(ridge, ProjectedRidge):
        raise TypeError("project the ridge first (ProjectedRidge.from_ridge)")
    arrays.update({f"ridge.{k}": getattr(ridge, k) for k in ("weight", "basis", "offset")})
    return {k: np.asarray(v, dtype) for k, v in arrays.items()}


def baselines_from_arrays(arrays):
    """Inverse of :func:`baseline_arrays`: ``{name: model}`` ready to predict (float32)."""
    mean = MeanImage()
    mean.mean = np.asarray(arrays["mean_image.mean"], np.float32)
    ridge = ProjectedRidge(*(arrays[f"ridge.{k}"] for k in ("weight", "basis", "offset")))
    return {mean.name: mean, ridge.name: ridge}


def training_sample(cache, max_samples, seed=0):
    """(features, targets as the decoder's floats, photo of each sample) for up to ``max_samples``
    samples of a training cache, chosen at random (seeded), in cache order."""
    n = len(cache)
    indices = np.arange(n) if n <= max_samples else np.sort(
        np.random.default_rng(seed).choice(n, max_samples, replace=False))
    names = cache.files
    groups = np.array([names[i].split("#")[0] for i in indices])
    features = cache.rows("features", indices)
    finite = np.isfinite(features.reshape(len(features), -1)).all(1)  # a damaged sample is left out
    return features[finite], targets_to_float(cache.rows("targets", indices[finite])), groups[finite]


def baseline_sample(cache, max_samples=2000, seed=0, flops=1e11):
    """The training samples the baselines are fitted on (:func:`training_sample`): at most
    ``max_samples``, and fewer for wide features, so that the N x N x D product of the kernel stays
    near ``flops`` (seconds on a CPU): 2000 for HOG, about 850 for SIFT at 128 px."""
    width = int(np.prod(cache.feature_shape))
    max_samples = max(256, min(max_samples, int((flops / width) ** 0.5)))
    return training_sample(cache, max_samples, seed)


def fit_baselines(cache, max_samples=2000, seed=0, flops=1e11):
    """The mean image and the ridge regression, fitted on a training cache: ``{name: model}``
    (on the samples of :func:`baseline_sample`)."""
    return fit_on_samples(*baseline_sample(cache, max_samples, seed, flops), seed=seed)


def fit_on_samples(features, targets, groups=None, seed=0):
    """The mean image and the ridge regression fitted on features (N, ...) and float targets
    (N, 3, T, T) in [-0.5, 0.5], ``groups`` (N,) the photo of each sample: ``{name: model}``."""
    models = (MeanImage(), RidgeRegression(seed=seed))
    return {m.name: m.fit(features, targets, groups) for m in models}


def unbeaten(error, errors):
    """The names of the baselines (``errors``: {name: normalised error}) that ``error`` does not beat."""
    return [name for name, value in errors.items() if error >= value]


def predictions_as_images(model, features, shape):
    """A baseline's predictions for ``features`` as (N, T, T, 3) float images on 0..255, clipped as
    the decoders' (:func:`models.data.encoders.float_to_images`)."""
    return float_to_images(np.asarray(model.predict(features), np.float32).reshape((len(features),) + tuple(shape)))


def baseline_errors(models, features, targets):
    """``{name: normalised error}`` of each fitted baseline on features (N, ...) with targets
    (N, T, T, 3) uint8; also returns ``{name: images}`` for figures."""
    shape = (3,) + targets.shape[1:3]
    images = {name: predictions_as_images(m, features, shape) for name, m in models.items()}
    errors = {name: normalized_error(targets.astype(np.float32), im) for name, im in images.items()}
    return errors, images
