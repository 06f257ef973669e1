"""PyTorch ``torch.save`` files (``.pth``/``.pt``), read without torch and without running their code.

Two layouts, both holding a pickled object (here a state dict) whose tensors are pickled as
``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)``
and whose storages are *persistent ids* ``("storage", torch.FloatStorage, key, location, numel)``
resolved outside the pickle:

- zip (torch >= 1.6): ``<folder>/data.pkl`` is the pickle; ``<folder>/data/<key>`` holds each
  storage's raw bytes (stored uncompressed, so they are mapped from the file without a copy);
  ``<folder>/byteorder`` says ``little`` or ``big`` (little when absent).
- legacy (``_use_new_zipfile_serialization=False``): five things back to back: the pickled magic
  number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict (``little_endian``),
  the pickled object (persistent ids carry a sixth item, a view description, None here), the
  pickled list of storage keys, then per key an int64 element count and the raw bytes.

Unpickling is restricted: :class:`RestrictedUnpickler` resolves only the globals in
:data:`SAFE_GLOBALS`, each mapped to a function of ours that builds plain data, and refuses every
other global (``os.system``, ``builtins.eval``, ...) before anything is called.
"""
import collections
import io
import os
import pickle
import pickletools
import struct
import zipfile

import numpy as np

from .common import WeightImportError

LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL_VERSION = 1001
MAX_PICKLE_PROTOCOL = 4
MAX_PICKLE_BYTES = 8 << 20  # a state dict's pickle names its tensors; their data lies in other members
# Pickle opcodes read per file: a state dict takes about 20 a tensor (AlexNet: a few hundred);
# counted before anything is unpickled, so that a file of millions of trivial opcodes is refused
# after reading this many (about a second).
MAX_PICKLE_OPCODES = 100_000
MAX_INFLATION = 16           # largest expansion of a compressed member accepted
MEMO_STORE_OPCODES = ("PUT", "BINPUT", "LONG_BINPUT")
ZIP_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # ... file name length, extra field length
ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class StorageType:
    """What ``torch.FloatStorage`` & co. unpickle to: just the element type."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class StorageRef:
    """A persistent id: storage ``key`` of ``numel`` elements of ``dtype``, bytes read later."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


class TensorRef:
    """A tensor waiting for its storage's bytes: ``storage[offset]`` with ``size`` and ``stride``."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self, storages, file_name):
        """A read-only numpy view of the storage's bytes; every index is checked to lie inside."""
        data = storages[self.storage.key]
        ints = (self.offset,) + self.size + self.stride
        if (len(self.size) != len(self.stride) or not all(isinstance(v, int) and v >= 0 for v in ints)):
            raise WeightImportError(f"{file_name}: tensor with offset {self.offset}, size {self.size}, "
                                    f"stride {self.stride} is malformed")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) if all(self.size) else -1
        if last >= data.size:
            raise WeightImportError(f"{file_name}: tensor of size {self.size} reaches element {last} of "
                                    f"storage {self.storage.key!r}, which has {data.size}")
        numel = int(np.prod(self.size, dtype=np.int64)) if self.size else 1
        if numel > data.size - self.offset:  # elements repeated by zero or overlapping strides
            raise WeightImportError(f"{file_name}: tensor of size {self.size} (stride {self.stride}) has {numel:,} "
                                    f"elements but views only {data.size - self.offset:,} of storage "
                                    f"{self.storage.key!r}: an expanded view, refused (it would be written out whole)")
        return np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                               [s * data.itemsize for s in self.stride], writeable=False)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None):
    if not isinstance(storage, StorageRef):
        raise TypeError("tensor without a storage")
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`SAFE_GLOBALS`; persistent ids become :class:`StorageRef`."""

    def __init__(self, file, file_name, refs):
        super().__init__(file)
        self.file_name = file_name
        self.refs = refs

    def find_class(self, module, name):
        if (module, name) not in SAFE_GLOBALS:
            raise WeightImportError(f"{self.file_name}: refusing to load the global {module}.{name}: "
                                    "a weight file needs only tensors and dicts, and this one would run code")
        found = SAFE_GLOBALS[(module, name)]
        # a fresh storage type per file: a BUILD opcode aimed at a shared one would change it for every later file
        return StorageType(found.name) if isinstance(found, StorageType) else found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], (str, int)) and isinstance(pid[4], int)):
            # described by its types only: the repr of a hostile nested structure can take forever
            shape = [type(p).__name__ for p in pid[:6]] if isinstance(pid, tuple) else type(pid).__name__
            raise WeightImportError(f"{self.file_name}: unsupported persistent id (of {shape})")
        if len(pid) == 6 and pid[5] is not None:
            raise WeightImportError(f"{self.file_name}: storage views (files of torch < 0.4) are not supported")
        key = str(pid[2])
        ref = self.refs.setdefault(key, StorageRef(key, pid[1].dtype, pid[4]))
        if ref.dtype != pid[1].dtype:
            raise WeightImportError(f"{self.file_name}: storage {key!r} used with two element types")
        return ref


def _unpickle(file, file_name, refs, budget):
    """One restricted ``pickle.load``; any failure of the data becomes a WeightImportError.
    ``budget``: ``[opcodes left to read in this file]``, shared by its pickles."""
    start = file.tell()
    shared = [g for g in SAFE_GLOBALS.values() if not isinstance(g, StorageType)]
    before = [dict(vars(g)) for g in shared]
    try:
        _check_opcodes(file, file_name, budget)
        file.seek(start)
        data = RestrictedUnpickler(file, file_name, refs).load()
    except WeightImportError:
        raise
    except Exception as exc:  # a malformed pickle can fail in any of pickle's many ways
        raise WeightImportError(f"{file_name}: corrupt pickle data at byte {file.tell()} "
                                f"({type(exc).__name__}: {exc})") from None
    finally:
        changed = _restore_globals(shared, before)
    if changed:
        raise WeightImportError(f"{file_name}: the pickle changes an allowed global (a BUILD opcode on a class or "
                                "function); refused, and the change undone")
    return data


def _restore_globals(shared, before):
    """Undo attributes that a BUILD opcode applied to an allowed global (a class or function, not
    an instance) would otherwise leave for the rest of the process; returns whether any was set."""
    changed = False
    for obj, saved in zip(shared, before):
        now = vars(obj)
        for key in [k for k in now if k not in saved or now[k] is not saved[k]]:
            changed = True
            if key in saved:
                setattr(obj, key, saved[key])
            else:
                delattr(obj, key)
    return changed


def _check_opcodes(file, file_name, budget):
    """Refuse, before unpickling, what would make the unpickler allocate memory or take time the
    file does not justify: more opcodes than ``budget[0]`` (which is decreased), a memo index
    beyond the file's length (the memo table grows to the index) and protocol 5's out-of-band
    buffers (a bytearray of a declared length), which torch.save never writes."""
    for opcode, argument, position in pickletools.genops(file):
        budget[0] -= 1
        if budget[0] < 0:
            raise WeightImportError(f"{file_name}: the pickle holds more than {MAX_PICKLE_OPCODES:,} opcodes by byte "
                                    f"{position:,} (of {len(file.view):,}); a state dict of weights needs a few "
                                    "per tensor: not a weight file; refused")
        if opcode.proto > MAX_PICKLE_PROTOCOL:
            raise WeightImportError(f"{file_name}: pickle opcode {opcode.name} at byte {position} "
                                    f"(protocol {opcode.proto}) is not used by torch.save")
        if opcode.name in MEMO_STORE_OPCODES and argument > len(file.view):
            raise WeightImportError(f"{file_name}: pickle memo index {argument} at byte {position} is "
                                    "larger than the file")


def read_torch(path, buffer):
    """The tensors of a ``torch.save``d state dict, by key, as read-only numpy arrays."""
    file_name = os.fspath(path)
    if bytes(buffer[:4]) == ZIP_LOCAL_SIGNATURE:
        obj, storages = _read_zip(file_name, buffer)
    else:
        obj, storages = _read_legacy(file_name, buffer)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightImportError(f"{file_name}: holds a {type(obj).__name__}, not a state dict")
    return {str(key): value.materialize(storages, file_name) if isinstance(value, TensorRef) else value
            for key, value in obj.items()}


def _read_zip(file_name, buffer):
    try:
        with zipfile.ZipFile(_ViewFile(buffer)) as archive:
            pickles = [info for info in archive.infolist() if info.filename.endswith("data.pkl")
                       and info.filename.count("/") == 1]
            if len(pickles) != 1:
                raise WeightImportError(f"{file_name}: a zip file without one <folder>/data.pkl "
                                        "(a TorchScript archive or not a torch.save file)")
            folder = pickles[0].filename[:-len("data.pkl")]
            refs = {}
            obj = _unpickle(_ViewFile(_inflate(archive, pickles[0], MAX_PICKLE_BYTES, file_name)), file_name, refs,
                            [MAX_PICKLE_OPCODES])
            byteorder = _zip_text(archive, folder + "byteorder", "little")
            if byteorder not in ("little", "big"):
                raise WeightImportError(f"{file_name}: byteorder {byteorder!r} is neither little nor big")
            storages = {}
            for key, ref in refs.items():
                data = _zip_member(archive, folder + "data/" + key, buffer, file_name,
                                   ref.numel * ref.dtype.itemsize)
                storages[key] = _storage_array(data, ref, byteorder, file_name)
            return obj, storages
    except WeightImportError:
        raise
    except Exception as exc:  # zipfile reports a corrupt archive with many exception types
        raise WeightImportError(f"{file_name}: corrupt zip archive ({type(exc).__name__}: {exc})") from None


def _zip_text(archive, name, default):
    try:
        return archive.read(name).decode("ascii", "replace").strip()
    except KeyError:
        return default


def _inflate(archive, info, limit, file_name):
    """The bytes of a compressed member, refusing before decompressing anything when it would expand
    past ``limit`` bytes or MAX_INFLATION times its compressed size (a zip bomb: torch.save stores
    members uncompressed, and float weights do not deflate to a tenth of their size)."""
    expands_to = info.file_size
    if expands_to > limit or expands_to > MAX_INFLATION * info.compress_size + (1 << 16):
        raise WeightImportError(f"{file_name}: zip member {info.filename!r} expands from {info.compress_size:,} to "
                                f"{expands_to:,} bytes (limit {limit:,}, at most {MAX_INFLATION}x): a zip bomb or "
                                "not a torch.save file; refused")
    with archive.open(info) as member:
        data = member.read(expands_to + 1)
    if len(data) != expands_to:
        raise WeightImportError(f"{file_name}: zip member {info.filename!r} holds {len(data):,} bytes, its header "
                                f"says {expands_to:,}: a corrupt archive")
    return data


def _zip_member(archive, name, buffer, file_name, expected):
    """A storage member's bytes (``expected`` of them, from the pickle): a view of the mapped file
    when stored uncompressed, else decompressed within that size."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise WeightImportError(f"{file_name}: the pickle refers to storage {name!r}, which is not in the "
                                "archive") from None
    if info.compress_type != zipfile.ZIP_STORED:
        if info.file_size != expected:
            raise WeightImportError(f"{file_name}: storage {name!r} holds {info.file_size:,} bytes, the pickle says "
                                    f"{expected:,}")
        return memoryview(_inflate(archive, info, expected, file_name))
    header = bytes(buffer[info.header_offset:info.header_offset + ZIP_LOCAL_HEADER.size])
    if len(header) < ZIP_LOCAL_HEADER.size or header[:4] != ZIP_LOCAL_SIGNATURE:
        raise WeightImportError(f"{file_name}: no local zip header for {name!r} at byte {info.header_offset}")
    name_length, extra_length = ZIP_LOCAL_HEADER.unpack(header)[-2:]
    start = info.header_offset + ZIP_LOCAL_HEADER.size + name_length + extra_length
    if start + info.file_size > len(buffer):
        raise WeightImportError(f"{file_name}: {name!r} runs past the end of the file")
    return buffer[start:start + info.file_size]


def _storage_array(data, ref, byteorder, file_name):
    dtype = ref.dtype.newbyteorder("<" if byteorder == "little" else ">")
    if len(data) != ref.numel * dtype.itemsize:
        raise WeightImportError(f"{file_name}: storage {ref.key!r} holds {len(data)} bytes, expected "
                                f"{ref.numel} x {dtype.itemsize}")
    return np.frombuffer(data, dtype)


def _read_legacy(file_name, buffer):
    stream = _ViewFile(buffer)
    refs, budget = {}, [MAX_PICKLE_OPCODES]
    if _unpickle(stream, file_name, refs, budget) != LEGACY_MAGIC_NUMBER:
        raise WeightImportError(f"{file_name}: not a torch.save file (no zip archive, no legacy magic number)")
    if _unpickle(stream, file_name, refs, budget) != LEGACY_PROTOCOL_VERSION:
        raise WeightImportError(f"{file_name}: unsupported legacy torch protocol version")
    sys_info = _unpickle(stream, file_name, refs, budget)
    byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"
    obj = _unpickle(stream, file_name, refs, budget)
    keys = _unpickle(stream, file_name, {}, budget)
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(refs):
        raise WeightImportError(f"{file_name}: the storage key list does not match the storages the object uses")
    count_format = struct.Struct("<q" if byteorder == "little" else ">q")
    pos = stream.tell()
    storages = {}
    for key in map(str, keys):
        ref = refs[key]
        if pos + count_format.size > len(buffer):
            raise WeightImportError(f"{file_name}: storage {key!r} at byte {pos} runs past the end of the file")
        (numel,) = count_format.unpack(buffer[pos:pos + count_format.size])
        start = pos + count_format.size
        end = start + max(numel, 0) * ref.dtype.itemsize
        if numel != ref.numel or end > len(buffer):
            raise WeightImportError(f"{file_name}: storage {key!r} at byte {pos} has {numel} elements "
                                    f"(expected {ref.numel}) or runs past the end of the file")
        storages[key] = _storage_array(buffer[start:end], ref, byteorder, file_name)
        pos = end
    return obj, storages


class _ViewFile:
    """A read-only file over bytes or a memoryview, with no copy of them.

    It has ``read``, ``readline``, ``seek``, ``seekable`` and ``tell`` (what pickle and zipfile use) but no
    ``readinto``: pickle then reads a declared length with ``read``, which returns only the bytes
    that exist, instead of first allocating whatever length a corrupt file declares.
    """

    LINE_SEARCH_CHUNK = 4096

    def __init__(self, view):
        self.view, self.pos = view, 0

    def read(self, size=-1):
        end = len(self.view) if size is None or size < 0 else min(self.pos + size, len(self.view))
        data = bytes(self.view[self.pos:end])
        self.pos = max(self.pos, end)
        return data

    def readline(self):
        start = end = self.pos
        while end < len(self.view):
            found = bytes(self.view[end:end + self.LINE_SEARCH_CHUNK]).find(b"\n")
            if found >= 0:
                end += found + 1
                break
            end += self.LINE_SEARCH_CHUNK
        self.pos = min(end, len(self.view))
        return bytes(self.view[start:self.pos])

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.view)}[whence] + offset
        if self.pos < 0:
            raise ValueError("negative seek position")
        return self.pos

    def tell(self):
        return self.pos
