"""Content hashes of files: whether a document changed, whether a model file is genuine."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

_CHUNK = 4 << 20  # large reads: hashing a 5 GB model is disk-bound, not call-bound


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
