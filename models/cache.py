"""The HDF5 feature cache: features and targets computed once per data set, resumable.

Layout: ``features`` (N, ...) float32 and ``targets`` (N, T, T, 3) uint8, both chunked
by sample; optionally ``photos`` (N, S, S, 3) uint8, the encoder's input photos (the autoencoder
variant runs the encoder on them at every step); ``files`` (N,) the source path of each sample (a
flipped copy has ``#flip`` appended, the k-th random crop ``#crop<k>``); root attributes ``representation``, ``image_size``,
``settings`` (JSON) and ``settings_hash``, ``files_done`` (how many source files have been
processed) and ``skipped`` (JSON list of ``[path, reason]``). Building appends chunk by chunk and
records progress after each, so an interrupted build continues where it stopped; a cache whose
settings or file list differ from the request is stale and is rebuilt.
"""
import hashlib
import json
import os
import warnings

import numpy as np

from nn.serialization import WeightFileError, open_h5

from .images import ImageError, center_square, random_crops, read_image

CHUNK = 32


def settings_hash(settings, files):
    text = json.dumps(settings, sort_keys=True) + "\n" + "\n".join(files)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_current(path, digest):
    try:
        with open_h5(path) as f:
            return f.attrs.get("settings_hash") == digest
    except (OSError, WeightFileError):
        return False


def build_cache(path, files, encoder, flip=False, progress=None, keep_photos=False, crops=0, seed=0,
                min_scale=0.5, colour_jitter=0.0):
    """Compute ``encoder``'s features and targets for ``files`` into the cache at ``path``
    (and keep the photos themselves with ``keep_photos``).

    Samples per photo: with ``crops`` = 0, the centre square (and with ``flip`` its mirror image as
    a second sample); with ``crops`` = K > 0, a pool of K random crops of the full-resolution photo
    (:func:`models.images.random_crops`: sides from ``min_scale`` to 1 of the short side, each
    mirrored with probability 1/2 if ``flip``, colours jittered by ``colour_jitter``), drawn from a generator seeded by (``seed``, the
    photo's index in ``files``), so the pool is the same whenever it is rebuilt.

    Returns the cache's summary dict (``samples``, ``skipped``). Unusable photos are skipped with a
    warning and listed. Safe to call again: a complete, current cache is reused as it is.
    """
    import h5py
    settings = {"representation": encoder.name, "image_size": encoder.image_size,
                "output_size": encoder.output_size, "flip": bool(flip),
                "weights": os.path.abspath(encoder.weights) if encoder.weights else None}
    if crops:
        settings.update(crops=int(crops), seed=int(seed), min_scale=float(min_scale),
                        colour_jitter=float(colour_jitter))
    if keep_photos:
        settings["photos"] = True
    digest = settings_hash(settings, [os.path.abspath(f) for f in files])
    if os.path.exists(path) and not _is_current(path, digest):
        warnings.warn(f"{path}: feature cache is stale (other settings or files); rebuilding it")
        os.remove(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with h5py.File(path, "a") as f:
        if "features" not in f:
            f.attrs.update(representation=encoder.name, image_size=encoder.image_size,
                           settings=json.dumps(settings), settings_hash=digest,
                           files_done=0, skipped="[]")
        done = int(f.attrs["files_done"])
        skipped = json.loads(f.attrs["skipped"])
        files_per_chunk = max(1, CHUNK // max(1, crops))
        for start in range(done, len(files), files_per_chunk):
            names, photos = [], []
            for index in range(start, min(start + files_per_chunk, len(files))):
                path_i = files[index]
                try:
                    image = read_image(path_i)
                except ImageError as exc:
                    warnings.warn(f"skipped: {exc}")
                    skipped.append([path_i, str(exc)])
                    continue
                if crops:
                    rng = np.random.default_rng([seed, index])
                    photos.extend(random_crops(image, encoder.image_size, crops, rng, min_scale, flip,
                                                colour_jitter))
                    names.extend(f"{path_i}#crop{k}" for k in range(crops))
                    continue
                photo = center_square(image, encoder.image_size)
                names.append(path_i)
                photos.append(photo)
                if flip:
                    names.append(path_i + "#flip")
                    photos.append(photo[:, ::-1])
            if photos:
                photos = np.stack(photos)
                columns = {"features": encoder.features(photos), "targets": encoder.targets(photos)}
                if keep_photos:
                    columns["photos"] = photos
                _append(f, columns, names)
            f.attrs["files_done"] = min(start + files_per_chunk, len(files))
            f.attrs["skipped"] = json.dumps(skipped)
            f.flush()
            if progress:
                progress(min(start + files_per_chunk, len(files)), len(files))
        samples = len(f["files"]) if "files" in f else 0
    if samples == 0:
        raise ValueError(f"no usable image among the {len(files)} files (skipped: {len(skipped)}); "
                         "pass --data with a folder of RGB JPEG or PNG photos")
    return {"samples": samples, "photos": len(files) - len(skipped), "skipped": skipped}


def _append(f, columns, names):
    """Append the rows ``columns`` (``{dataset name: (B, ...) array}``) and their ``names``."""
    columns = dict(columns, files=np.array(names, dtype=object))
    if "files" not in f:
        for name, values in columns.items():
            extra = {"dtype": _string_dtype()} if name == "files" else {"chunks": (1,) + values.shape[1:]}
            f.create_dataset(name, data=values, maxshape=(None,) + values.shape[1:], **extra)
        return
    n = len(f["files"])
    for name, values in columns.items():
        f[name].resize(n + len(values), axis=0)
        f[name][n:] = values


def _string_dtype():
    import h5py
    return h5py.string_dtype()


class FeatureCache:
    """Read access to a built cache: ``len``, ``files``, and batches by index."""

    def __init__(self, path):
        self.path = path
        self.h5 = open_h5(path)
        try:
            self.features, self.targets, files = (self.h5[name] for name in ("features", "targets", "files"))
            self.files = [s.decode() if isinstance(s, bytes) else str(s) for s in files[()]]
            if (self.features.dtype.kind != "f" or self.targets.dtype != np.uint8 or self.targets.ndim != 4
                    or not len(self.features) == len(self.targets) == len(self.files)):
                raise ValueError(f"features {self.features.shape} {self.features.dtype}, targets "
                                 f"{self.targets.shape} {self.targets.dtype}, {len(self.files)} files")
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            self.h5.close()
            raise WeightFileError(f"{path}: not a complete feature cache ({type(exc).__name__}: {exc}); delete it "
                                  "and it is rebuilt on the next run") from None

    def __len__(self):
        return len(self.files)

    @property
    def feature_shape(self):
        return self.features.shape[1:]

    def batch(self, indices):
        """(features (B, ...) float32, targets (B, T, T, 3) uint8) for ``indices``, in that order."""
        return self.rows("features", indices), self.rows("targets", indices)

    def rows(self, name, indices):
        """The rows ``indices`` (any order, repeats allowed) of the dataset ``name``."""
        indices = np.asarray(indices, np.int64)
        unique, inverse = np.unique(indices, return_inverse=True)
        dataset = self.h5[name]
        out = np.empty((len(unique),) + dataset.shape[1:], dataset.dtype)
        # Contiguous runs are read as slices: h5py's list indexing is about 10x slower than this.
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        for run in np.split(np.arange(len(unique)), breaks):
            if len(run):
                first, last = unique[run[0]], unique[run[-1]] + 1
                dataset.read_direct(out, np.s_[first:last], np.s_[run[0]:run[-1] + 1])
        return out[inverse.reshape(-1)]

    def close(self):
        self.h5.close()
