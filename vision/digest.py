"""SHA-256 digests: the one place that hashes bytes and files (models, evidence, datasets all use it).

Example:
    >>> sha256_hex(b"abc")[:12]
    'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Files are hashed in chunks of this size, so a large model never sits in memory twice.
_CHUNK_BYTES = 1 << 20


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (64 lowercase hex characters)."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()
