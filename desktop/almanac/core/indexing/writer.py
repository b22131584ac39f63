"""The one writer of a knowledge base in this process: every change to the index is a job on its
queue, run one at a time by its thread.

Drops, re-index and remove from the window, live-sync batches and reconciliations, and the CLI all
submit here, so no two writes of one process ever overlap and none of them can meet the
cross-process lock held by its own process (writer_lock). Each job carries a cancel event: a job
cancelled while queued never runs (and its caller stops waiting at once), a running one sees the
event and ends early, keeping what it committed.

The thread exists only while there is work: it starts with the first job and ends when the queue
is empty, so an idle writer holds no thread and needs no closing.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from almanac.core.indexing.writer_lock import WriteCancelled, exclusive_writer

T = TypeVar("T")
WaitCallback = Callable[[str], None]
# How often a caller waiting on a queued job looks at its cancel event.
_POLL_SECONDS = 0.05

log = logging.getLogger(__name__)


class WriteJob(Generic[T]):
    """One queued write: wait for its result, or cancel it."""

    def __init__(
        self,
        name: str,
        fn: Callable[[threading.Event], T],
        cancel: threading.Event,
        on_wait: WaitCallback | None,
        lock_wait: float | None,
    ) -> None:
        self.name = name
        self.cancel_event = cancel
        self._fn = fn
        self._on_wait = on_wait
        self._lock_wait = lock_wait
        self._state_lock = threading.Lock()
        self._started = False
        self._finished = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None

    def cancel(self) -> None:
        """Ask the job to stop; a job still queued never runs. Any thread."""
        self.cancel_event.set()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def started(self) -> bool:
        return self._started

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job has finished (or was dropped); never raises."""
        return self._finished.wait(timeout)

    def result(self, timeout: float | None = None) -> T:
        """The job's return value, or its exception; :class:`WriteCancelled` when it was
        cancelled before it started (at once, even while another job holds the writer)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished.wait(_POLL_SECONDS):
            if self.cancel_event.is_set():
                self._drop_if_queued()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"the write {self.name!r} is still running")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set whenever _error is None

    def _drop_if_queued(self) -> None:
        with self._state_lock:
            if self._started or self._finished.is_set():
                return
            self._error = WriteCancelled(f"{self.name} cancelled before it started")
            self._finished.set()

    def _claim(self) -> bool:
        """The writer thread takes the job; False when it was dropped while queued."""
        with self._state_lock:
            if self._finished.is_set():
                return False
            if self.cancel_event.is_set():
                self._error = WriteCancelled(f"{self.name} cancelled before it started")
                self._finished.set()
                return False
            self._started = True
            return True

    def _finish(self, result: T | None, error: BaseException | None) -> None:
        self._result, self._error = result, error
        self._finished.set()


class IndexWriter:
    """Runs write jobs for one knowledge base, in order, on one thread, under its writer lock."""

    def __init__(
        self,
        kb_dir: Path,
        *,
        on_crash: Callable[[], object] | None = None,
        lock_wait: float | None = None,
    ) -> None:
        """``on_crash`` runs under the lock before a job when the previous write session of any
        process ended without cleaning up. ``lock_wait``: how long a job waits for another process
        holding the knowledge base (None: until it is free or the job is cancelled)."""
        self.kb_dir = Path(kb_dir)
        self._on_crash = on_crash
        self._lock_wait = lock_wait
        self._lock = threading.Lock()
        self._queue: collections.deque[WriteJob[object]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._running: WriteJob[object] | None = None

    def submit(
        self,
        name: str,
        fn: Callable[[threading.Event], T],
        *,
        cancel: threading.Event | None = None,
        on_wait: WaitCallback | None = None,
        lock_wait: float | None = -1.0,
    ) -> WriteJob[T]:
        """Queue ``fn(cancel)``; returns at once. ``on_wait(message)`` is told when the job has
        to wait for another process; ``lock_wait`` overrides the writer's patience for this job."""
        job: WriteJob[T] = WriteJob(
            name,
            fn,
            cancel if cancel is not None else threading.Event(),
            on_wait,
            self._lock_wait if lock_wait == -1.0 else lock_wait,
        )
        with self._lock:
            self._queue.append(job)  # type: ignore[arg-type]  # the queue holds any job
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="almanac-index-writer", daemon=True
                )
                self._thread.start()
        return job

    def run(
        self,
        name: str,
        fn: Callable[[threading.Event], T],
        *,
        cancel: threading.Event | None = None,
        on_wait: WaitCallback | None = None,
        lock_wait: float | None = -1.0,
    ) -> T:
        """Submit and wait for the result. On the writer's own thread (a job that writes more)
        it runs at once: waiting for itself would never end."""
        if threading.current_thread() is self._thread:
            return fn(cancel if cancel is not None else threading.Event())
        return self.submit(name, fn, cancel=cancel, on_wait=on_wait, lock_wait=lock_wait).result()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def cancel_all(self) -> None:
        """Cancel the running job and every queued one (shutting down)."""
        with self._lock:
            jobs = list(self._queue) + ([self._running] if self._running else [])
        for job in jobs:
            job.cancel()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once no job is queued or running (after ``timeout`` seconds: whether it is)."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def close(self, timeout: float | None = None) -> bool:
        """Cancel everything and wait at most ``timeout`` seconds for the running job. False when
        it is still running: its thread is a daemon, so the process may exit anyway, as safely
        as after a crash (the next write session finds and repairs what it left)."""
        self.cancel_all()
        return self.wait_idle(timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    self._running = None
                    return
                job = self._queue.popleft()
                self._running = job
            if job._claim():
                self._execute(job)

    def _execute(self, job: WriteJob[object]) -> None:
        try:
            with exclusive_writer(
                self.kb_dir,
                wait=job._lock_wait,
                cancel=job.cancel_event,
                on_wait=job._on_wait,
            ) as crashed:
                if crashed and self._on_crash is not None:
                    self._on_crash()
                result = job._fn(job.cancel_event)
        except BaseException as exc:  # handed to the caller, never lost on this thread
            job._finish(None, exc)
        else:
            job._finish(result, None)
