"""HDF5 files of named arrays, written atomically.

One convention for every file the project writes (weights, checkpoints, imported weights):
a flat mapping ``"conv1.weight" -> array`` is stored as the dataset ``conv1/weight`` (each dot
opens a group), and root attributes carry metadata (``format``, ``version``, ``model``,
``source``, ...). Writing goes to a temporary file in the same folder that is renamed over the
target only when complete, so a crash never leaves a half-written file under the final name.

Every file is sealed: its first 512 bytes (an HDF5 *userblock*, which HDF5 skips) are a fixed
text header holding the SHA-256 and length of the rest of the file. A reader checks the seal on
the raw bytes before HDF5 parses any structure, so a flipped bit is refused before it can mislead
(or hang) the parser; a file without a seal is refused unless the caller names it foreign.
"""
import errno
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import stat
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


def check_output(path, extensions):
    """Raise ValueError, naming ``path`` and the fix, unless a file of one of ``extensions`` (such as
    ``(".png", ".jpg")``; any case) can be written at ``path``: a known extension, not a folder, in
    a folder that exists and is writable. Commands call it on their output before any work."""
    path = os.fspath(path)
    name = printable(path)
    folder = os.path.dirname(os.path.abspath(path))
    stem, extension = os.path.splitext(os.path.basename(path))
    if os.path.isdir(path):
        raise ValueError(f"{name}: is a folder; name a file in it, such as {os.path.join(name, 'out' + extensions[0])}")
    if extension.lower() not in extensions:
        raise ValueError(f"{name}: unknown extension {extension or '(none)'!r} for this output; name a "
                         f"{', '.join(extensions)} file, such as {(stem or 'out') + extensions[0]}")
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: the folder {folder} does not exist; create it (mkdir -p {folder}) or write elsewhere")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: the folder {folder} is not writable; write elsewhere or change its permissions")


def atomic_write(path, write):
    """Call ``write(tmp_path)``, flush the finished temporary file to the disk, and rename it to
    ``path`` (then flush the folder, so that the rename itself survives a power cut). A kill at any
    moment leaves either the old file or the new one; a kill before the rename leaves a
    ``.tmp-*`` file, which the next run in that folder removes (models.training.train.RunFolder)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    except OSError as exc:
        error = _disk_full(exc, path, folder)
        if error is exc:
            raise type(exc)(f"{path}: cannot be written ({exc.strerror or exc}); check that its folder is writable, "
                            "or write elsewhere") from None
        raise error from None
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
    sealed (the module's docstring). The file is built in memory and written to the disk in one
    piece, so HDF5 itself never meets a failing write (it crashes on some, e.g. a full disk, while
    a file it extends is open): a full disk is one OSError (ENOSPC) and leaves the previous file in
    place."""
    h5py = _h5py()
    image = io.BytesIO()
    with h5py.File(image, "w", userblock_size=SEAL_BYTES) as f:
        fill(f)
    buffer = image.getbuffer()
    buffer[:SEAL_BYTES] = _seal_header(hashlib.sha256(buffer[SEAL_BYTES:]).hexdigest(), len(buffer) - SEAL_BYTES)
    del buffer  # a BytesIO cannot be read on while a view of it is held

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
    attributes (object first, then the path, as ``torch.save`` and :func:`save`)."""
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


def open_h5(path, verify_checksum=True, foreign=False):
    """Open an HDF5 file for reading, turning every failure into one :class:`WeightFileError`.

    The file's seal is checked first, on its raw bytes (:func:`verify_seal`): a file without one is
    refused unless ``foreign`` (a file written by another tool, that the caller reads on purpose);
    ``verify_checksum=False`` (a reader that verified this file before) checks the seal's form and
    length but skips the hashing. Files are data, never pointers: a file with an external link, a
    soft link, a virtual dataset or a dataset in external storage (each of which makes h5py read
    another file, say /etc/passwd, as if it were in this one) is refused, as is a dataset that
    declares much more data than the file holds (a sparse dataset that would be read whole)."""
    h5py = _h5py()
    path = os.fspath(path)
    if os.path.isdir(path):
        inside = [os.path.join(path, name) for name in ("checkpoint.h5", "best.h5")
                  if os.path.isfile(os.path.join(path, name))]
        raise WeightFileError(f"{path}: a folder, not a file; pass "
                              + (f"the file in it, {' or '.join(inside)}" if inside else "an HDF5 file written by featinv"))
    verify_seal(path, foreign=foreign, hash_content=verify_checksum)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightFileError(f"{path}: not a readable HDF5 file ({_h5_reason(exc)}); "
                              "pass a file written by featinv (cli.py import-weights or train)") from None
    try:
        check_self_contained(f, path)
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


SPECIAL_FILES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_file_kind(mode):
    """What a file of ``os.stat`` mode ``mode`` is when it is not a regular file ("a FIFO (named
    pipe)", "a folder", ...), or None for a regular file. Reading a FIFO or a device could wait for
    ever or never end: every reader of weights and photos refuses them by this one table."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in SPECIAL_FILES if test(mode)), "a special file")


def printable(path):
    """``path`` as text any terminal, font or UTF-8 file takes: the bytes of a name that is not UTF-8
    (which ``os.fsdecode`` keeps as lone surrogates) are written ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_regular_file(path, error=WeightFileError):
    """Raise ``error`` naming ``path`` unless it is a regular file: a FIFO, a device or a socket
    would block a read forever or never end it, and a folder is no file. Returns its ``os.stat``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc.strerror})") from None
    kind = special_file_kind(info.st_mode)
    if kind is not None:
        raise error(f"{path}: is {kind}, not a regular file; refused (reading it could wait forever): "
                    "pass the path of a file")
    return info


def _h5_reason(exc):
    """HDF5's error in one line: the system's reason where HDF5 quotes it, without its dump of
    times, descriptors and buffer addresses."""
    quoted = re.search(r"error message = '([^']*)'", str(exc))
    return quoted.group(1) if quoted else " ".join(str(exc).split())


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


SEAL_BYTES = 512  # the HDF5 userblock holding the seal (its smallest size)
SEAL_MAGIC = b"featinv sealed HDF5 v1\n"
_SEAL_FIELDS = re.compile(rb"sha256 ([0-9a-f]{64})\nbytes ([0-9]{1,15})\n\0*")
_HASH_BLOCK = 1 << 20


def _seal_header(digest, size):
    """The seal: the magic line, the SHA-256 (hex) and length of the bytes after the seal, then
    zeros up to SEAL_BYTES."""
    return (SEAL_MAGIC + f"sha256 {digest}\nbytes {size}\n".encode()).ljust(SEAL_BYTES, b"\0")


def _bits_apart(a, b):
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b))


def verify_seal(path, foreign=False, hash_content=True):
    """Check the seal of the file ``path`` on its raw bytes, before anything parses it; returns
    True for a sealed file, False for an unsealed one that ``foreign`` allows. A missing, damaged
    or mismatching seal is one WeightFileError naming the file and the fix. A header a few bits
    from the magic line counts as a damaged seal even when ``foreign``, so that one flipped bit
    cannot turn a featinv file into an unchecked foreign one."""
    path = os.fspath(path)
    size = check_regular_file(path).st_size
    with open(path, "rb") as f:
        head = f.read(SEAL_BYTES)
        magic = head[:len(SEAL_MAGIC)]
        if len(head) < SEAL_BYTES or _bits_apart(magic, SEAL_MAGIC) > 8:
            if foreign:
                return False
            raise WeightFileError(f"{path}: carries no featinv seal (a file of another tool, or of an older featinv); "
                                  f"refused: if you trust it, seal it with 'python3 cli.py seal {path}'")
        fields = _SEAL_FIELDS.fullmatch(head[len(SEAL_MAGIC):])
        if magic != SEAL_MAGIC or fields is None:
            raise WeightFileError(f"{path}: its seal is damaged (a bit flip, a bad copy); re-create the file or "
                                  "restore a good copy")
        digest, declared = fields.group(1).decode(), int(fields.group(2))
        if size - SEAL_BYTES != declared:
            raise WeightFileError(f"{path}: holds {size - SEAL_BYTES:,} bytes after its seal, which says {declared:,}: "
                                  "the file was truncated or extended after it was written; re-create it or restore "
                                  "a good copy")
        if hash_content:
            content = hashlib.sha256()
            for block in iter(lambda: f.read(_HASH_BLOCK), b""):
                content.update(block)
            if content.hexdigest() != digest:
                raise WeightFileError(f"{path}: checksum mismatch: the file was damaged after it was written (a bit "
                                      "flip, a bad copy); re-create it or restore a good copy")
    return True


LEGACY_CHECKSUM = "sha256"  # the root attribute older featinv files carried instead of a seal


def seal_file(path):
    """Rewrite the HDF5 file ``path`` sealed, its groups, datasets and root attributes as they are
    now (an older featinv file's ``sha256`` attribute is left out): for a file you trust, written
    by another tool or an older featinv. Its content is not verified: that is the caller's word."""
    h5py = _h5py()
    path = os.fspath(path)
    check_regular_file(path)
    try:
        source = h5py.File(path, "r")
    except OSError as exc:
        raise WeightFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    with source:
        check_self_contained(source, path)

        def fill(f):
            for key, value in source.attrs.items():
                if key != LEGACY_CHECKSUM:
                    f.attrs[key] = value
            for name in source:
                source.copy(source[name], f, name=name)

        write_h5(path, fill)


MAX_JSON_DEPTH = 64  # arrays and objects nested in each other: featinv's settings nest 3 deep
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text):
    """How deep the arrays and objects of the JSON ``text`` nest (brackets inside strings are not
    counted), found without parsing it: Python's parser recurses once per level."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    brackets = _JSON_BRACKETS.findall(_JSON_STRING.sub("", text))
    return max(itertools.accumulate(1 if b in "[{" else -1 for b in brackets), default=0)


def json_attr(f, name, path, kind=dict):
    """The root attribute ``name`` of the open file ``f``, parsed as JSON of type ``kind``; a
    missing or malformed one, or one nested deeper than MAX_JSON_DEPTH, is one WeightFileError
    naming the file."""
    try:
        text = f.attrs[name]
    except KeyError:
        raise WeightFileError(f"{path}: the attribute {name!r} is missing; the file is incomplete or not "
                              "featinv's: re-create it") from None
    if isinstance(text, (str, bytes)) and json_depth(text) > MAX_JSON_DEPTH:
        raise WeightFileError(f"{path}: the attribute {name!r} nests JSON more than {MAX_JSON_DEPTH} deep; "
                              "refused (featinv writes a few levels): re-create the file")
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise WeightFileError(f"{path}: the attribute {name!r} is not valid JSON ({exc}); re-create the file") from None
    if not isinstance(value, kind):
        raise WeightFileError(f"{path}: the attribute {name!r} holds a {type(value).__name__}, expected a "
                              f"{kind.__name__}; re-create the file")
    return value


def load_arrays(path, foreign=False):
    """Read a file written by :func:`save_arrays`: returns ``(arrays, attrs)``. ``foreign``: the
    file may be unsealed, written by another tool (:func:`open_h5`)."""
    with open_h5(path, foreign=foreign) as f:
        try:
            return read_groups(f), dict(f.attrs)
        except (OSError, KeyError, ValueError) as exc:
            raise WeightFileError(f"{path}: corrupt HDF5 content ({exc}); re-create the file") from None


class LoadedState(dict):
    """What :func:`load` returns: ``{name: array}`` that knows its file (``source``), so that
    ``Module.load_state_dict`` errors name it."""

    def __init__(self, arrays, source):
        super().__init__(arrays)
        self.source = source


def save(obj, f):
    """Write the state dict ``obj`` (``{"layer.weight": array or tensor}``, as ``model.state_dict()``)
    to the HDF5 file ``f`` atomically, in ``torch.save``'s argument order. Arrays only: an HDF5
    file holds no pickled objects and no code (other values are refused)."""
    if not isinstance(obj, dict):
        raise TypeError(f"nn.save: expected a dict of arrays (a state_dict()), got {type(obj).__name__}")
    arrays = {}
    for name, value in obj.items():
        array = to_numpy(value)
        if not isinstance(name, str) or array.dtype.kind not in "biuf":
            raise TypeError(f"nn.save: {name!r} is not a string key with an array value ({type(value).__name__})")
        arrays[name] = array
    save_arrays(arrays, f)


def load(f):
    """The ``{name: NumPy array}`` that :func:`save` wrote to ``f`` (host arrays:
    ``model.load_state_dict`` copies them onto the model's device, as PyTorch's map_location)."""
    arrays, _ = load_arrays(f)
    return LoadedState(arrays, os.fspath(f))
