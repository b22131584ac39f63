"""Content hashes of files: whether a document changed, whether a model file is genuine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

_CHUNK = 4 << 20  # large reads: hashing a 5 GB model is disk-bound, not call-bound


def file_matches(path: Path, sha256: str, size: int | None = None) -> bool:
    """``path`` exists with ``size`` bytes (when given, checked first: it costs no read) and
    the SHA-256 ``sha256``; False for a missing or unreadable file."""
    try:
        if size is not None and path.stat().st_size != size:
            return False
        return sha256_file(path) == sha256
    except OSError:
        return False


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    """Streamed SHA-256 in constant memory; ``progress(done, total)`` is called after each chunk."""
    digest = hashlib.sha256()
    total = path.stat().st_size if progress is not None else 0
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                done += len(chunk)
                progress(done, total)
    return digest.hexdigest()
