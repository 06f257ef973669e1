"""HDF5 files of named arrays, written atomically.

One convention for every file the project writes (weights, checkpoints, imported weights):
a flat mapping ``"conv1.weight" -> array`` is stored as the dataset ``conv1/weight`` (each dot
opens a group), and root attributes carry metadata (``format``, ``version``, ``model``,
``source``, ...). Writing goes to a temporary file in the same folder that is renamed over the
target only when complete, so a crash never leaves a half-written file under the final name.
"""
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
import traceback

import numpy as np

from .backend import to_numpy
from .errors import WeightFileError

FORMAT = "featinv"
VERSION = 1


class DiskFullError(OSError):
    """A file could not be written because its disk (or the user's quota) is full; the file's
    previous version, if any, is untouched. ``path``: the file; ``free``: bytes left on its disk."""

    def __init__(self, path, free):
        super().__init__(errno.ENOSPC, "No space left on device", path)
        self.path, self.free = path, free

    @property
    def state(self):
        """``the disk is full (N MiB free)``, for messages."""
        return f"the disk is full ({self.free / 2**20:.1f} MiB free)"

    def __str__(self):
        return (f"{self.path}: {self.state}, so it was not written (its previous version, if any, is kept): "
                "free some space and run the command again")


def _disk_full(exc, path, folder):
    """``exc`` as a DiskFullError if it says the disk is full, else ``exc`` itself."""
    if isinstance(exc, OSError) and (exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)):
        return DiskFullError(path, shutil.disk_usage(folder).free)
    return exc


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a hard dependency
        raise ImportError("HDF5 files need h5py: pip install h5py") from exc
    return h5py


def atomic_write(path, write):
    """Call ``write(tmp_path)``, flush the finished temporary file to the disk, and rename it to
    ``path`` (then flush the folder, so that the rename itself survives a power cut). A kill at any
    moment leaves either the old file or the new one; a kill before the rename leaves a
    ``.tmp-*`` file, which the next run in that folder removes (models.training.train.RunFolder)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as open() would create it (mkstemp makes it private)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        error = _disk_full(exc, path, folder)
        if error is exc:
            raise
        raise error from None


def write_h5(path, fill):
    """Write the HDF5 file ``path`` atomically: ``fill(f)`` fills the open file, which is then
    sealed (:func:`seal`). The file is built in memory and written to the disk in one piece, so
    HDF5 itself never meets a failing write (it crashes on some, e.g. a full disk, while a file it
    extends is open): a full disk is one OSError (ENOSPC) and leaves the previous file in place."""
    h5py = _h5py()
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        fill(f)
        seal(f)

    def write(tmp):
        with open(tmp, "wb") as out:
            out.write(image.getbuffer())

    atomic_write(path, write)


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _attr_value(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


def write_groups(h5group, arrays):
    """Store ``{"a.b": array}`` as nested groups ``a/b`` under ``h5group``."""
    for name, array in arrays.items():
        h5group.create_dataset(name.replace(".", "/"), data=np.asarray(array))


def read_groups(h5group):
    """Inverse of :func:`write_groups`: every dataset below ``h5group`` as ``{"a.b": ndarray}``."""
    arrays = {}

    def visit(name, obj):
        if hasattr(obj, "shape"):
            arrays[name.replace("/", ".")] = obj[()]

    h5group.visititems(visit)
    return arrays


def save_arrays(arrays, path, **attrs):
    """Write ``arrays`` (``{"layer.weight": array}``) to the HDF5 file ``path`` atomically, with root
    attributes (object first, then the path, as ``torch.save`` and :func:`save_module`)."""
    def fill(f):
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        for key, value in attrs.items():
            f.attrs[key] = _attr_value(value)
        write_groups(f, arrays)

    write_h5(path, fill)


# Declared dataset bytes allowed per byte of file: featinv writes uncompressed data (ratio <= 1);
# a dataset declaring far more than its file holds is sparse or hostile and would be read whole.
MAX_DECLARED_PER_FILE_BYTE = 4
SLACK_BYTES = 1 << 20


def open_h5(path, verify_checksum=True):
    """Open an HDF5 file for reading, turning every failure into one :class:`WeightFileError`.

    Files are data, never pointers: a file with an external link, a soft link, a virtual dataset
    or a dataset in external storage (each of which makes h5py read another file, say
    /etc/passwd, as if it were in this one) is refused, as is a dataset that declares much more
    data than the file holds (a sparse dataset that would be read whole). A sealed file (weights,
    checkpoints, decoder files, cache shards: :func:`seal`) must match its checksum
    (``verify_checksum=False``: a reader that verified this file before skips the hashing)."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightFileError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightFileError(f"{path}: not a readable HDF5 file ({exc}); "
                              "pass a file written by featinv (cli.py import-weights or train)") from None
    try:
        check_self_contained(f, path)
        if verify_checksum:
            verify(f, path)
    except (RuntimeError, ValueError, TypeError, KeyError, OSError) as exc:
        f.close()
        if isinstance(exc, WeightFileError) or not _raised_by_h5py(exc):
            raise
        raise WeightFileError(f"{path}: damaged HDF5 content ({type(exc).__name__}: {exc}); the file is corrupt: "
                              "re-create it") from None
    except BaseException:
        f.close()
        raise
    return f


def _raised_by_h5py(exc):
    """Whether ``exc`` comes from h5py or the HDF5 library (their word for content they cannot decode)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "h5py" in frames[-1].filename


def check_self_contained(f, path):
    """Raise WeightFileError unless every object of the open HDF5 file ``f`` is stored in it."""
    h5py = _h5py()
    budget = MAX_DECLARED_PER_FILE_BYTE * os.path.getsize(path) + SLACK_BYTES
    declared = 0

    def refuse(name, what):
        raise WeightFileError(f"{path}: {name} is {what}, which would read data from outside the file; "
                              "refused (featinv files hold their data themselves): pass a file written by featinv")

    def walk(group, prefix):
        nonlocal declared
        try:
            names = list(group)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:  # a damaged group
            raise WeightFileError(f"{path}: {prefix or '/'} is damaged ({exc}); the file is corrupt: re-create it") from None
        for name in names:
            full = f"{prefix}/{name}"
            try:
                link = group.get(name, getlink=True)
            except (OSError, KeyError, ValueError) as exc:
                raise WeightFileError(f"{path}: {full} cannot be read ({exc})") from None
            if isinstance(link, h5py.ExternalLink):
                refuse(full, f"an external link to {link.filename}")
            if isinstance(link, h5py.SoftLink):
                refuse(full, f"a soft link to {link.path}")
            try:
                obj = group[name]
            except (OSError, KeyError, ValueError, RuntimeError) as exc:  # a damaged object header
                raise WeightFileError(f"{path}: {full} is damaged ({exc}); the file is corrupt: re-create it") from None
            if isinstance(obj, h5py.Group):
                walk(obj, full)
                continue
            if not isinstance(obj, h5py.Dataset):
                raise WeightFileError(f"{path}: {full} is a {type(obj).__name__}, not data; pass a file written by featinv")
            if obj.is_virtual:
                refuse(full, "a virtual dataset")
            if obj.external:
                refuse(full, f"stored in external files ({obj.external[0][0]!r}...)")
            declared += obj.size * obj.dtype.itemsize
            if declared > budget:
                raise WeightFileError(f"{path}: its datasets declare {declared:,} bytes (at {full}) but the file has "
                                      f"{os.path.getsize(path):,}: a sparse or hostile file; refused")

    walk(f, "")


CHECKSUM = "sha256"


def content_digest(f):
    """SHA-256 of everything in the open HDF5 file ``f`` but the checksum itself: every root
    attribute, and every dataset's name, dtype, shape and bytes, in sorted order."""
    h5py = _h5py()
    digest = hashlib.sha256()
    for name in sorted(a for a in f.attrs if a != CHECKSUM):
        digest.update(f"attr {name}={f.attrs[name]!r}\n".encode())
    datasets = []
    f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in sorted(datasets):
        dataset = f[name]
        if dataset.ndim == 0:  # hashed as files sealed so far were: the value as an array of shape (1,)
            value = np.ascontiguousarray(dataset[()])
            dtype, shape, blocks = value.dtype, value.shape, [value]
        else:  # in C order, a block of rows at a time: memory of one block, whatever the dataset's size
            dtype, shape, blocks = dataset.dtype, dataset.shape, _row_blocks(dataset)
        digest.update(f"data {name} {dtype.str} {shape}\n".encode())
        if dtype.kind == "O":  # variable-length strings: their bytes, not the object pointers
            digest.update(b"\0".join(v if isinstance(v, bytes) else str(v).encode()
                                     for block in blocks for v in np.asarray(block).reshape(-1)))
        else:
            for block in blocks:
                digest.update(np.ascontiguousarray(block))
    return digest.hexdigest()


def _row_blocks(dataset, block_bytes=16 << 20):
    """The values of a dataset of one or more axes as consecutive blocks along its first axis, each
    about ``block_bytes``."""
    rows = max(1, block_bytes // max(1, dataset.nbytes // max(1, dataset.shape[0])))
    for start in range(0, dataset.shape[0], rows):
        yield dataset[start:start + rows]


def seal(f):
    """Store the file's checksum (call last, before closing a file being written)."""
    f.attrs[CHECKSUM] = content_digest(f)


def verify(f, path):
    """Raise WeightFileError if a sealed file's content no longer matches its checksum."""
    if CHECKSUM in f.attrs and content_digest(f) != f.attrs[CHECKSUM]:
        raise WeightFileError(f"{path}: checksum mismatch: the file was damaged after it was written (a bit flip, "
                              "a bad copy); re-create it or restore a good copy")


def json_attr(f, name, path, kind=dict):
    """The root attribute ``name`` of the open file ``f``, parsed as JSON of type ``kind``; a
    missing or malformed one is one WeightFileError naming the file."""
    try:
        value = json.loads(f.attrs[name])
    except KeyError:
        raise WeightFileError(f"{path}: the attribute {name!r} is missing; the file is incomplete or not "
                              "featinv's: re-create it") from None
    except (TypeError, ValueError) as exc:
        raise WeightFileError(f"{path}: the attribute {name!r} is not valid JSON ({exc}); re-create the file") from None
    if not isinstance(value, kind):
        raise WeightFileError(f"{path}: the attribute {name!r} holds a {type(value).__name__}, expected a "
                              f"{kind.__name__}; re-create the file")
    return value


def load_arrays(path):
    """Read a file written by :func:`save_arrays`: returns ``(arrays, attrs)``."""
    with open_h5(path) as f:
        try:
            return read_groups(f), dict(f.attrs)
        except (OSError, KeyError, ValueError) as exc:
            raise WeightFileError(f"{path}: corrupt HDF5 content ({exc}); re-create the file") from None


def save_module(module, path, **attrs):
    """Write a module's parameters (host copies) to an HDF5 weight file (``torch.save``'s order:
    the object, then where)."""
    save_arrays({name: to_numpy(a) for name, a in module.state_dict().items()}, path, **attrs)


def load_module(path, module, strict=True):
    """Load an HDF5 weight file into ``module``; returns the file's root attributes."""
    arrays, attrs = load_arrays(path)
    module.load_state_dict(arrays, strict=strict, source=os.fspath(path))
    return attrs
