"""What every reader shares: the error class, the check that a path is a regular file, and
read-only memory mapping of a file.

Readers map the whole file read-only (``mmap``) and hand out numpy views of it, so importing a
file never holds a second copy of its weights; a page is read from disk when it is first touched.
Arrays returned this way are read-only and keep the mapping alive for as long as they live.
"""
import mmap
import os

from nn.errors import UserError
from nn.serialization import check_regular_file  # one check for every file featinv reads

MAX_DIMS = 8  # axes a weight tensor may declare (AlexNet's have at most 4); more is refused before decoding



class WeightImportError(UserError):
    """A foreign weight file that cannot be imported; the message names the file and the reason."""


def map_file(path):
    """The bytes of ``path`` as a read-only memoryview of a memory mapping (empty files: no mapping)."""
    check_regular_file(path, WeightImportError)
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise WeightImportError(f"{path}: cannot read the file ({exc.strerror})") from None
