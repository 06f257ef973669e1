"""Which photos a decoder was trained on, recorded as one SHA-256 digest of each photo file's bytes.

A decoder file keeps the digests of its training photos (``training_photos``), and a training run
has them from its cache's list of source files, so that an evaluation can tell when photos it is
given were trained on: their errors flatter the decoder. Digests of the bytes, not of the path:
the same photo under another name or through a link is recognised; a re-encoded copy is not.
"""
import hashlib
import os

DIGEST_BYTES = 32


def photo_digest(path):
    """The SHA-256 digest (32 bytes) of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def source_photos(sample_names):
    """The photo files behind a cache's samples (``path#crop`` names), once each, in order."""
    return list(dict.fromkeys(name.split("#")[0] for name in sample_names))


def photo_digests(paths):
    """``{digest: path}`` of the files in ``paths`` that can be read (a moved photo is left out)."""
    digests = {}
    for path in paths:
        if os.path.isfile(path):
            try:
                digests[photo_digest(path)] = path
            except OSError:
                continue
    return digests
