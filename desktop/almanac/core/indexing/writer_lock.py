"""One writer per knowledge base: threads of this process queue, other processes are locked out.

Two levels, because they fail differently. Inside a process every writer thread queues on one
lock per knowledge base and simply waits its turn: two threads of the same app must never read
"another Almanac process is updating the knowledge base" about themselves. Across processes (the
CLI and the desktop app may both run) an OS file lock decides; it is released by the kernel when
its process dies, even by kill -9, so a crash never leaves a stale lock. A caller chooses whether
to fail at once when another process holds it or to wait, told once that it is waiting, until it
is free or the caller cancels.

A separate marker file records that a write session did not end cleanly.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_LOCK_FILE = "writer.lock"
_DIRTY_FILE = "ingest.dirty"
# How often a waiting writer tries the other process's lock again (and looks at its cancel event).
_RETRY_SECONDS = 0.1


class WriterBusyError(Exception):
    """Another process holds the knowledge base's writer lock (and the caller would not wait)."""


class WriteCancelled(Exception):
    """A write was cancelled before or while it ran; whatever it committed is kept."""


@dataclass(slots=True)
class _ProcessSlot:
    """This process's share of one knowledge base's lock: the queue and the file lock held."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0  # nested holds by the owning thread; the file lock is taken at depth 1
    handle: IO[bytes] | None = None
    crashed: bool = False


_SLOTS: dict[str, _ProcessSlot] = {}
_SLOTS_LOCK = threading.Lock()


def _slot(kb_dir: Path) -> _ProcessSlot:
    key = os.path.realpath(kb_dir)
    with _SLOTS_LOCK:
        return _SLOTS.setdefault(key, _ProcessSlot())


def busy_message(kb_dir: Path) -> str:
    return f"another Almanac process is updating the knowledge base {kb_dir}"


@contextlib.contextmanager
def exclusive_writer(
    kb_dir: Path,
    *,
    wait: float | None = 0.0,
    cancel: threading.Event | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[bool]:
    """Hold the writer lock; yields True when the previous write session crashed.

    Threads of this process wait for each other whatever ``wait`` says. ``wait`` is how long to
    wait for another *process* (None: as long as it takes); 0 fails at once with
    :class:`WriterBusyError`. ``on_wait(message)`` is called once when waiting for another
    process begins; setting ``cancel`` ends any wait with :class:`WriteCancelled`. The same
    thread may nest holds (the inner ones are free)."""
    slot = _slot(kb_dir)
    _acquire_in_process(slot, cancel)
    try:
        if slot.depth == 0:
            slot.handle = _acquire_file(kb_dir, wait, cancel, on_wait)
            dirty = kb_dir / _DIRTY_FILE
            slot.crashed = dirty.exists()
            try:
                dirty.touch()
            except BaseException:
                _release_file(slot)
                raise
        slot.depth += 1
        try:
            yield slot.crashed
            if slot.depth == 1:
                (kb_dir / _DIRTY_FILE).unlink(missing_ok=True)
                slot.crashed = False
        finally:
            slot.depth -= 1
            if slot.depth == 0:
                _release_file(slot)
    finally:
        slot.lock.release()


def _acquire_in_process(slot: _ProcessSlot, cancel: threading.Event | None) -> None:
    if cancel is None:
        slot.lock.acquire()
        return
    while not slot.lock.acquire(timeout=_RETRY_SECONDS):
        if cancel.is_set():
            raise WriteCancelled("cancelled while waiting for the writer")
    if cancel.is_set():
        slot.lock.release()
        raise WriteCancelled("cancelled while waiting for the writer")


def _acquire_file(
    kb_dir: Path,
    wait: float | None,
    cancel: threading.Event | None,
    on_wait: Callable[[str], None] | None,
) -> IO[bytes]:
    kb_dir.mkdir(parents=True, exist_ok=True)
    handle = open(kb_dir / _LOCK_FILE, "a+b")  # noqa: SIM115 - held for the whole session
    deadline = None if wait is None else time.monotonic() + wait
    told = False
    try:
        while True:
            try:
                _lock(handle)
                return handle
            except OSError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise WriterBusyError(
                        f"{busy_message(kb_dir)}; try again when it is done"
                    ) from exc
            if not told and on_wait is not None:
                told = True
                on_wait(f"{busy_message(kb_dir)}; waiting for it to finish")
            if cancel is not None:
                if cancel.wait(_RETRY_SECONDS):
                    raise WriteCancelled("cancelled while waiting for another Almanac process")
            else:
                time.sleep(_RETRY_SECONDS)
    except BaseException:
        handle.close()
        raise


def _release_file(slot: _ProcessSlot) -> None:
    handle, slot.handle = slot.handle, None
    if handle is not None:
        try:
            _unlock(handle)
        finally:
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
