"""The kernel's inotify event-queue limit, which two sync tests shrink to provoke a real overflow.

The limit is one setting for the whole machine. A test run interrupted while it was shrunk left
it at 8 events, and every later watcher on the machine lost events: CI then failed a test that
counts how files reach the index (a 2,000-file burst overflowed the queue and was found by
rescans instead of by events). So the original value is written to a file before the limit is
shrunk, and every test session starts by putting back what an interrupted one left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

QUEUE_LIMIT = Path("/proc/sys/fs/inotify/max_queued_events")
TINY = 8
KERNEL_DEFAULT = 16384
_SAVED = Path(tempfile.gettempdir()) / "almanac-tests-inotify-queue-limit"


def can_shrink() -> bool:
    return QUEUE_LIMIT.exists() and os.access(QUEUE_LIMIT, os.W_OK)


@contextmanager
def tiny_queue() -> Iterator[None]:
    """Inotify instances created inside the block keep a queue of ``TINY`` events."""
    old = QUEUE_LIMIT.read_text().strip()
    _SAVED.write_text(old, encoding="utf-8")
    QUEUE_LIMIT.write_text(str(TINY))
    try:
        yield
    finally:
        QUEUE_LIMIT.write_text(old)
        _SAVED.unlink(missing_ok=True)


def repair_leftover() -> str:
    """Put back a limit an interrupted run left shrunk; says what it did ("" if nothing)."""
    if not can_shrink():
        return ""
    current = int(QUEUE_LIMIT.read_text())
    if _SAVED.exists():
        value = int(_SAVED.read_text(encoding="utf-8"))
    elif current <= TINY:  # shrunk by a run from before the saved value was kept
        value = KERNEL_DEFAULT
    else:
        return ""
    QUEUE_LIMIT.write_text(str(value))
    _SAVED.unlink(missing_ok=True)
    return f"inotify max_queued_events was {current}, left by an interrupted test run: now {value}"
