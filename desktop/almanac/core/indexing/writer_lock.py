"""One writer per knowledge base, across processes (the CLI and the desktop app may both run).

An OS file lock is released by the kernel when its process dies, even by kill -9, so a crash never
leaves a stale lock. A separate marker file records that a write session did not end cleanly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_LOCK_FILE = "writer.lock"
_DIRTY_FILE = "ingest.dirty"


class WriterBusyError(Exception):
    pass


@contextlib.contextmanager
def exclusive_writer(kb_dir: Path) -> Iterator[bool]:
    """Hold the writer lock; yields True when the previous write session crashed."""
    kb_dir.mkdir(parents=True, exist_ok=True)
    handle = open(kb_dir / _LOCK_FILE, "a+b")  # noqa: SIM115 - held for the whole session
    try:
        _lock(handle)
    except OSError as exc:
        handle.close()
        raise WriterBusyError(
            f"another Almanac process is updating the knowledge base {kb_dir}; "
            "try again when it is done"
        ) from exc
    dirty = kb_dir / _DIRTY_FILE
    crashed = dirty.exists()
    try:
        dirty.touch()
        yield crashed
        dirty.unlink(missing_ok=True)
    finally:
        _unlock(handle)
        handle.close()


def _lock(handle: IO[bytes]) -> None:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock(handle: IO[bytes]) -> None:
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
