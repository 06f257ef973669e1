"""The feature cache: features and targets computed once per data set, in shards.

A cache is a folder::

    manifest.json     what the cache holds: the request (representation, sizes, crops, ...), its
                      hash with the list of source files, the number of files and of shards, and,
                      once every shard is built, each shard's sample count
    shard-00000.h5    the samples of source files [0, P), P = ``photos_per_shard``
    shard-00001.h5    the samples of source files [P, 2P) ...

Each shard holds ``targets`` (n, T, T, 3) uint8, ``files`` (n,) (the source path of each sample; a
flipped copy has ``#flip`` appended, the k-th random crop ``#crop<k>``), optionally ``photos``
(n, S, S, 3) uint8 (the encoder's input photos: the autoencoder variant runs the encoder on them
at every step), the root attributes ``skipped`` (JSON ``[[path, reason], ...]``: its unusable
photos) and ``feature_shape`` (JSON), and the features in one of two layouts:

- dense: ``features`` (n, ...) float32 (or float16 with ``feature_dtype="float16"``);
- sparse, for maps whose cells are mostly empty (SIFT's: a keypoint fills one 4x4-pixel cell in
  about twenty): only the filled cells, ``counts`` (n,) int32 filled cells per sample, ``cells``
  (K,) int32 the index y * W + x of each filled cell, ``values`` (K, C) its C channels. Reading
  scatters them back into zeros (:func:`densify`), which gives the dense map bit for bit.

A shard is written whole into a temporary file, sealed with its SHA-256
(:func:`nn.serialization.seal`) and renamed into place (:func:`nn.serialization.atomic_write`).
So shards can be built in any order and by any number of processes or machines
(:mod:`models.data.extract` spreads them over a Dask cluster); a shard that exists is complete; a kill,
a full disk or a lost worker costs at most the shards being written, and the same command builds
only the missing ones. A cache whose request or file list differ from the current one is stale and
is rebuilt. Reading verifies each shard's checksum the first time it is opened, and holds only the
shards in use open, so its memory does not grow with the data set.
"""
import hashlib
import json
import os
import re
import warnings
from collections import namedtuple

import numpy as np

from nn.errors import OptionError, UserError
from nn.serialization import DiskFullError, WeightFileError, atomic_write, open_h5, write_h5

from ..networks import decoders
from .images import ImageError, center_square, printable, random_crops, read_image

MANIFEST = "manifest.json"
FORMAT = "featinv-feature-cache"
VERSION = 2
CHUNK = 32                     # samples computed at a time inside a shard (the progress step)
SHARD_BYTES = 256 << 20        # about this many bytes of samples per shard
MAX_MANIFEST_BYTES = 1 << 20   # a manifest holds no per-file data: anything bigger is not ours
MAX_OPEN_SHARDS = 64
FEATURE_DTYPES = ("float32", "float16")
SHARD_NAME = re.compile(r"shard-(\d{5,})\.h5\Z")


class CacheError(UserError):
    """A feature cache that cannot be built or read; the message names the path and the fix."""


def settings_hash(settings, files):
    text = json.dumps(settings, sort_keys=True) + "\n" + "\n".join(files)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()  # any name the OS allows


def run_cache(out, split):
    """The cache folder of a run folder ``out`` for ``split`` ("train" or "val")."""
    return os.path.join(out, f"cache_{split}")


def shard_path(folder, index):
    return os.path.join(folder, f"shard-{index:05d}.h5")


class CachePlan:
    """What a cache holds and how it is cut into shards; :meth:`job` gives what building one shard
    needs (:func:`build_shard`), which is all that a worker on another machine receives.

    ``settings``: the request (representation, sizes, flip, crops, seed, ...), ``files``: the
    source photos in order, ``photos_per_shard``: consecutive files per shard."""

    def __init__(self, folder, files, settings, photos_per_shard):
        self.folder = os.path.abspath(folder)
        self.files = [os.path.abspath(f) for f in files]
        self.settings = settings
        self.photos_per_shard = int(photos_per_shard)
        self.digest = settings_hash(settings, self.files)

    @property
    def shards(self):
        return -(-len(self.files) // self.photos_per_shard)

    def files_of(self, index):
        """(index of the first file, the files) of shard ``index``."""
        start = index * self.photos_per_shard
        return start, self.files[start:start + self.photos_per_shard]

    def job(self, index):
        """What building shard ``index`` needs, and no more (a Dask task carries it to a worker)."""
        first, files = self.files_of(index)
        return ShardJob(self.folder, self.settings, index, first, files)

    def manifest(self, samples=None):
        return {"format": FORMAT, "version": VERSION, "settings": self.settings, "settings_hash": self.digest,
                "files": len(self.files), "photos_per_shard": self.photos_per_shard, "shards": self.shards,
                "samples": samples}

    def missing(self):
        """Indices of the shards not built yet."""
        return [i for i in range(self.shards) if not os.path.exists(shard_path(self.folder, i))]

    def files_done(self, missing):
        """How many source files the shards built so far hold, ``missing`` the others."""
        return len(self.files) - sum(len(self.files_of(i)[1]) for i in missing)


# One shard to build: the cache folder and settings, the shard's index, the index in the data set
# of its first photo (crops are seeded by it) and its photos.
ShardJob = namedtuple("ShardJob", "folder settings index first files")


def plan_cache(path, files, encoder, flip=False, keep_photos=False, crops=0, seed=0, min_scale=0.5,
               colour_jitter=0.0, feature_dtype="float32"):
    """The :class:`CachePlan` of ``encoder``'s features of ``files`` in the folder ``path``."""
    if feature_dtype not in FEATURE_DTYPES:
        raise OptionError(f"feature_dtype {feature_dtype!r}: expected one of {FEATURE_DTYPES}")
    settings = {"representation": encoder.name, "image_size": encoder.image_size,
                "output_size": encoder.output_size, "flip": bool(flip),
                "weights": os.path.abspath(encoder.weights) if encoder.weights else None,
                "storage": encoder.rep.storage, "feature_dtype": feature_dtype}
    if crops:
        settings.update(crops=int(crops), seed=int(seed), min_scale=float(min_scale),
                        colour_jitter=float(colour_jitter))
    elif flip and encoder.rep.mirror_channels is not None:
        settings["flip_at_read"] = True  # LBP: the flipped copy is made from the stored map, exactly
    if keep_photos:
        settings["photos"] = True
    samples_per_photo = crops or (2 if flip and not settings.get("flip_at_read") else 1)
    feature_bytes = 4 * int(np.prod(encoder.rep.feature_shape(encoder.image_size)))
    sample_bytes = feature_bytes + 3 * encoder.output_size ** 2 + (3 * encoder.image_size ** 2 if keep_photos else 0)
    photos_per_shard = max(1, SHARD_BYTES // (sample_bytes * samples_per_photo))
    return CachePlan(path, files, settings, photos_per_shard)


def disk_error(exc, folder):
    """An OSError of a cache build as one CacheError (a full disk said as such)."""
    if isinstance(exc, DiskFullError):
        return CacheError(f"{folder}: {exc.state} while writing the feature cache; every finished shard is "
                          "kept: free some space (or pass --out on another disk) and run the same command to continue")
    return CacheError(f"{folder}: cannot write the feature cache ({exc}); check the folder and run the same "
                      "command to continue")


def remove_half_written(folder):
    """Remove the temporary files of shard writers that were killed."""
    for name in os.listdir(folder):
        if name.startswith(".tmp-"):
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:  # its writer finished or removed it meanwhile
                pass


def prepare_folder(plan):
    """Create the cache folder, or empty it if it holds a stale cache; remove half-written shards."""
    folder = plan.folder
    if os.path.isfile(folder):
        raise CacheError(f"{folder}: is a file, not a feature cache folder; remove it or choose another --out")
    current = read_manifest(folder, quiet=True)
    if current is not None and current.get("settings_hash") != plan.digest:
        warnings.warn(f"{folder}: feature cache is stale (other settings or files); rebuilding it")
        for name in os.listdir(folder):
            if name == MANIFEST or SHARD_NAME.match(name):
                os.remove(os.path.join(folder, name))
        current = None
    os.makedirs(folder, exist_ok=True)
    remove_half_written(folder)
    if current is None:
        write_manifest(folder, plan.manifest())


def write_manifest(folder, manifest):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1)
    atomic_write(os.path.join(folder, MANIFEST), write)


def read_manifest(folder, quiet=False):
    """The manifest of the cache in ``folder`` as a dict (None if there is none, or with ``quiet``
    if it is unreadable); a malformed one raises CacheError."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        if os.path.getsize(path) > MAX_MANIFEST_BYTES:
            raise ValueError(f"{os.path.getsize(path):,} bytes, more than a manifest holds")
        with open(path) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise ValueError("not a featinv feature cache manifest of version 2")
        for key in ("files", "photos_per_shard", "shards"):
            if not isinstance(manifest.get(key), int) or manifest[key] < 0:
                raise ValueError(f"{key!r} is not a count")
        samples = manifest.get("samples")
        if samples is not None and (not isinstance(samples, list) or len(samples) != manifest["shards"]
                                    or not all(isinstance(n, int) and n >= 0 for n in samples)):
            raise ValueError("'samples' is not one count per shard")
    except (OSError, ValueError) as exc:
        if quiet:
            return {}
        raise CacheError(f"{path}: unreadable feature cache manifest ({exc}); delete the folder {folder} and it "
                         "is rebuilt on the next run") from None
    return manifest


def shard_photos(job):
    """The photos (n, S, S, 3) uint8, their sample names and the skipped files of a shard, in chunks
    of about CHUNK samples: yields (names, photos, skipped, files done in the shard)."""
    settings, first, files = job.settings, job.first, job.files
    crops, size = settings.get("crops", 0), settings["image_size"]
    names, photos, skipped = [], [], []
    for offset, path in enumerate(files):
        try:
            image = read_image(path)
        except ImageError as exc:
            warnings.warn(f"skipped: {exc}")
            skipped.append([path, str(exc)])
        else:
            if crops:
                rng = np.random.default_rng([settings["seed"], first + offset])
                photos.extend(random_crops(image, size, crops, rng, settings["min_scale"], settings["flip"],
                                           settings["colour_jitter"]))
                names.extend(f"{printable(path)}#crop{k}" for k in range(crops))
            else:
                photo = center_square(image, size)
                names.append(printable(path))
                photos.append(photo)
                if settings["flip"] and not settings.get("flip_at_read"):
                    names.append(printable(path) + "#flip")
                    photos.append(photo[:, ::-1])
        if len(photos) >= CHUNK or offset == len(files) - 1:
            yield names, photos, skipped, offset + 1
            names, photos, skipped = [], [], []


def build_shard(job, encoder, progress=None):
    """Compute the shard of ``job`` (:meth:`CachePlan.job`) with ``encoder`` and write it
    atomically. ``progress(files of this shard done)`` is called after each chunk."""
    settings = job.settings
    dtype = np.dtype(settings["feature_dtype"])

    def fill(f):
        count, filled, skipped = 0, 0, []
        for names, photos, newly_skipped, done in shard_photos(job):
            skipped += newly_skipped
            if photos:
                photos = np.stack(photos)
                features = encoder.features(photos)
                columns = {"targets": encoder.targets(photos), "files": np.array(names, dtype=object)}
                if settings.get("photos"):
                    columns["photos"] = photos
                if settings["storage"] == "sparse":
                    cells, values, counts = sparsify(features)
                    _append(f, {"cells": cells, "values": values.astype(dtype)}, filled)
                    columns["counts"] = counts
                    filled += len(cells)
                else:
                    columns["features"] = features.astype(dtype)
                _append(f, columns, count)
                count += len(names)
                f.attrs["feature_shape"] = json.dumps(list(features.shape[1:]))
            if progress:
                progress(done)
        f.attrs["skipped"] = json.dumps(skipped)
        if "feature_shape" not in f.attrs:  # every photo of the shard was unusable
            f.attrs["feature_shape"] = json.dumps(list(encoder.rep.feature_shape(settings["image_size"])))

    write_h5(shard_path(job.folder, job.index), fill)


def sparsify(features):
    """Dense maps (N, C, H, W) -> (cells (K,) int32, values (K, C), counts (N,) int32): the cells
    y * W + x in which any channel is non-zero, sample by sample in order."""
    n, c = features.shape[:2]
    per_cell = features.reshape(n, c, -1).transpose(0, 2, 1)  # (N, H W, C)
    filled = np.any(per_cell != 0, axis=2)
    sample, cell = np.nonzero(filled)
    return cell.astype(np.int32), per_cell[sample, cell], filled.sum(axis=1).astype(np.int32)


def densify(cells, values, counts, shape, xp=np):
    """Inverse of :func:`sparsify`: float32 maps (B, C, H, W) with ``values`` in ``cells`` and 0
    elsewhere (``shape`` = (C, H, W)); on any array module ``xp`` (each cell is written once)."""
    c, h, w = shape
    out = xp.zeros((len(counts), h * w, c), np.float32)
    sample = xp.repeat(xp.arange(len(counts)), xp.asarray(counts, np.int64))
    out[sample, xp.asarray(cells, np.int64)] = xp.asarray(values, np.float32)
    return out.transpose(0, 2, 1).reshape(len(counts), c, h, w)


PER_SAMPLE = ("features", "targets", "photos")  # read a sample at a time: one chunk each
CHUNK_BYTES = 64 << 10  # the other rows (cells, values, counts, files) in chunks of about this size


def _append(f, columns, count):
    """Append the rows ``columns`` (``{dataset name: (B, ...) array}``) after the first ``count``.
    A sample's map and images are one chunk; the small rows of the other datasets (a cell's
    values, a sample's count or name) are chunked whole, as many as the first append brings, up to
    about CHUNK_BYTES (a chunk is allocated whole, so a small shard keeps small chunks)."""
    import h5py
    for name, values in columns.items():
        if name not in f:
            row_bytes = values.itemsize * int(np.prod(values.shape[1:]))
            rows = 1 if name in PER_SAMPLE else max(1, min(CHUNK_BYTES // row_bytes, len(values)))
            f.create_dataset(name, shape=(0,) + values.shape[1:], maxshape=(None,) + values.shape[1:],
                             dtype=h5py.string_dtype() if name == "files" else values.dtype,
                             chunks=(rows,) + values.shape[1:])
        f[name].resize(count + len(values), axis=0)
        f[name][count:] = values


def finish(plan):
    """Check that every shard is there, record their sample counts in the manifest; the summary."""
    remove_half_written(plan.folder)
    missing = plan.missing()
    if missing:
        raise CacheError(f"{plan.folder}: shards {missing[:5]} were not built; run the same command to continue")
    samples, skipped = [], []
    for index in range(plan.shards):  # their checksums are verified when they are read
        shard = Shard(shard_path(plan.folder, index), verify_checksum=False)
        samples.append(len(shard))
        skipped += shard.skipped
        shard.close()
    manifest = read_manifest(plan.folder)
    if manifest.get("samples") != samples:
        write_manifest(plan.folder, plan.manifest(samples))
    if sum(samples) == 0:
        raise ImageError(f"no usable image among the {len(plan.files)} files (skipped: {len(skipped)}); "
                         "pass --data with a folder of RGB JPEG or PNG photos")
    return {"samples": sum(samples), "photos": len(plan.files) - len(skipped), "skipped": skipped}


class Shard:
    """One open shard: ``len``, the shapes of its samples, and rows read by local index.

    Opening checks that the file is self-contained and sealed (and its checksum, unless
    ``verify_checksum`` is False: a reader that verified it before), and that its datasets agree
    with each other, so that a damaged or hostile shard is one CacheError, never a wrong batch."""

    def __init__(self, path, verify_checksum=True):
        self.path = path
        try:
            self.h5 = open_h5(path, verify_checksum)
        except CacheError:
            raise
        except WeightFileError as exc:  # its message ends with the fix for a file a user made: replaced
            problem = str(exc).rsplit("; ", 1)[0]
            raise CacheError(f"{problem}; delete {path} and run the same command again: it rebuilds the missing "
                             "shards") from None
        try:
            self._check()
        except BaseException:
            self.h5.close()
            raise

    def _check(self):
        f, path = self.h5, self.path
        self.sparse = "cells" in f
        needed = ("counts", "cells", "values") if self.sparse else ("features",)
        try:
            for name in needed + ("targets", "files"):
                if name not in f:
                    raise ValueError(f"no dataset {name!r}")
            self.skipped = json.loads(f.attrs["skipped"])
            self.feature_shape = tuple(int(n) for n in json.loads(f.attrs["feature_shape"]))
            targets, self.n = f["targets"], len(f["files"])
            problem = None
            if targets.dtype != np.uint8 or targets.ndim != 4 or len(targets) != self.n:
                problem = f"targets {targets.shape} {targets.dtype} for {self.n} files"
            elif not self.sparse:
                features = f["features"]
                if features.dtype.kind != "f" or features.shape != (self.n,) + self.feature_shape:
                    problem = f"features {features.shape} {features.dtype}, expected ({self.n}, {self.feature_shape})"
            else:
                problem = self._check_sparse()
            if problem:
                raise ValueError(problem)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CacheError):
                raise
            raise CacheError(f"{path}: not a complete feature cache shard ({exc}); delete it and the same command "
                             "rebuilds it") from None
        self.target_shape = tuple(self.h5["targets"].shape[1:])

    def _check_sparse(self):
        f = self.h5
        counts, cells, values = f["counts"][()], f["cells"], f["values"]
        if len(self.feature_shape) != 3:
            return f"a sparse map of shape {self.feature_shape}"
        c, h, w = self.feature_shape
        if (counts.dtype.kind not in "iu" or counts.shape != (self.n,) or counts.min(initial=0) < 0
                or cells.dtype.kind not in "iu" or cells.ndim != 1 or values.dtype.kind != "f"
                or values.shape != (len(cells), c) or int(counts.sum()) != len(cells)):
            return (f"counts {counts.shape} {counts.dtype}, cells {cells.shape} {cells.dtype}, values {values.shape} "
                    f"{values.dtype} do not describe {self.n} maps of {self.feature_shape}")
        cells = cells[()]
        if len(cells) and (cells.min() < 0 or cells.max() >= h * w):
            return f"cells outside the {h}x{w} map"
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        return None

    def __len__(self):
        return self.n

    def __contains__(self, name):
        return name in self.h5 or (name == "features" and self.sparse)

    def read(self, name, local):
        """Rows ``local`` (sorted, unique) of ``name``; features always as float32 dense maps."""
        local = np.asarray(local, np.int64)
        if name == "features" and self.sparse:
            first, end = self.starts[local], self.starts[local + 1]
            picked = np.concatenate([np.arange(a, b) for a, b in zip(first, end)] + [np.empty(0, np.int64)])
            return densify(_read_rows(self.h5["cells"], picked), _read_rows(self.h5["values"], picked), end - first,
                           self.feature_shape)
        rows = _read_rows(self.h5[name], local)
        return rows.astype(np.float32) if name == "features" else rows

    def close(self):
        self.h5.close()


def _read_rows(dataset, rows):
    """``dataset[rows]`` for sorted unique ``rows``: contiguous runs are read as slices (h5py's list
    indexing selects element by element, much more slowly)."""
    rows = np.asarray(rows, np.int64)
    out = np.empty((len(rows),) + dataset.shape[1:], dataset.dtype)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for run in np.split(np.arange(len(rows)), breaks):
        if len(run):
            dataset.read_direct(out, np.s_[rows[run[0]]:rows[run[-1]] + 1], np.s_[run[0]:run[-1] + 1])
    return out


def _text(name):
    """A sample name as read from a shard (h5py gives bytes or str) as str."""
    return name.decode() if isinstance(name, bytes) else str(name)


class FeatureCache:
    """Read access to a built cache folder: ``len``, ``files``, and rows by index.

    Stored sample ``i`` is sample ``i - offsets[k]`` of shard k. At most MAX_OPEN_SHARDS shards are
    open at a time; each is verified against its checksum when first opened. Where the cache makes
    flips at read time (``flip_at_read``: LBP with ``flip``), sample 2i is stored sample i and
    sample 2i + 1 its mirror image, made by :meth:`models.networks.decoders.ShallowFeature.mirror`."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if os.path.isfile(self.path):
            raise CacheError(f"{self.path}: a file, not a feature cache folder (an older featinv wrote caches as "
                             "one .h5 file): delete it and the cache is rebuilt on the next run")
        manifest = read_manifest(self.path)
        if manifest is None or manifest.get("samples") is None:
            raise CacheError(f"{self.path}: not a complete feature cache (no finished manifest); run the same "
                             "command again and the build continues")
        self.counts = np.asarray(manifest["samples"], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.settings = manifest.get("settings", {})
        self.flip_at_read = bool(self.settings.get("flip_at_read"))
        if self.flip_at_read:
            self.representation = decoders.representation(self.settings.get("representation"))
            if self.representation.mirror_channels is None:
                raise CacheError(f"{self.path}: flips at read time for {self.representation.name}, which has no exact "
                                 f"mirror; delete the folder and it is rebuilt")
        self._open = {}
        self._verified = set()
        self._shapes = None
        if not self.counts.any():
            raise CacheError(f"{self.path}: a feature cache without samples; delete it and pass --data with a "
                             "folder of RGB JPEG or PNG photos")
        self._first = int(np.flatnonzero(self.counts)[0])
        first = self._shard(self._first)
        self.feature_shape, self.target_shape = first.feature_shape, first.target_shape

    def __len__(self):
        return int(self.offsets[-1]) * (2 if self.flip_at_read else 1)

    def _shard(self, index):
        """The open shard ``index`` (opened, and the least recently used one closed, if need be)."""
        shard = self._open.pop(index, None)
        if shard is None:
            shard = self._open_checked(index)
            if len(self._open) >= MAX_OPEN_SHARDS:
                self._open.pop(next(iter(self._open))).close()
        self._open[index] = shard  # most recently used last
        return shard

    def _open_checked(self, index):
        path = shard_path(self.path, index)
        shard = Shard(path, verify_checksum=index not in self._verified)
        shapes = (shard.feature_shape, shard.target_shape)
        problem = None
        if len(shard) != self.counts[index]:
            problem = f"{len(shard)} samples, the manifest says {self.counts[index]}"
        elif self._shapes is not None and shapes != self._shapes:
            problem = f"samples of shape {shapes}, the other shards' are {self._shapes}"
        if problem:
            shard.close()
            raise CacheError(f"{path}: {problem}; delete the folder {self.path} and it is rebuilt")
        self._verified.add(index)
        self._shapes = shapes
        return shard

    @property
    def files(self):
        """The source of every sample (path, with ``#flip`` or ``#crop<k>``), in order."""
        names = []
        for index in range(len(self.counts)):
            if self.counts[index]:
                names += [_text(s)
                          for s in self._shard(index).read("files", np.arange(self.counts[index]))]
        if self.flip_at_read:
            return [name + suffix for name in names for suffix in ("", "#flip")]
        return names

    def batch(self, indices):
        """(features (B, ...) float32, targets (B, T, T, 3) uint8) for ``indices``, in that order."""
        return self.rows("features", indices), self.rows("targets", indices)

    def rows(self, name, indices):
        """The rows ``indices`` (any order, repeats allowed) of ``name`` ("features", "targets",
        "photos" or "files"); features as float32 dense maps whatever the storage."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"{self.path}: rows {indices.min()}..{indices.max()} of a cache of {len(self)}")
        if name not in self._shard(self._first):
            raise KeyError(f"{self.path}: the cache holds no {name!r}")
        if not self.flip_at_read:
            return self._stored_rows(name, indices)
        rows = self._stored_rows(name, indices // 2)
        flipped = indices % 2 == 1
        if flipped.any():
            if name == "features":
                rows[flipped] = self.representation.mirror(rows[flipped])
            elif name == "files":
                rows[flipped] = [_text(n) + "#flip" for n in rows[flipped]]
            else:  # targets, photos (N, T, T, 3): mirrored left-right
                rows[flipped] = rows[flipped][:, :, ::-1]
        return rows

    def _stored_rows(self, name, indices):
        """The stored rows ``indices`` of ``name``, in that order."""
        unique, inverse = np.unique(indices, return_inverse=True)
        shards = np.searchsorted(self.offsets, unique, side="right") - 1
        parts = [self._shard(self._first).read(name, [])]
        for index in np.unique(shards):
            parts.append(self._shard(int(index)).read(name, unique[shards == index] - self.offsets[index]))
        return np.concatenate(parts)[inverse.reshape(-1)]

    def close(self):
        for shard in self._open.values():
            shard.close()
        self._open.clear()
