"""Live folder sync: keep the knowledge base equal to the watched folders while the app runs.

Two threads per sync, with a strict division of labour:

* the watchdog observer thread(s) only record *which paths* changed, in a map
  {path: last event time} (one small entry per path however many events it gets), and wake
* the sync thread, the single writer, which waits until a path has been quiet for
  ``quiet_period`` seconds and then applies the *final state on disk* through the Ingestor.

Deciding from the disk rather than from the event sequence is what makes editors' atomic saves
(write a temp file, rename it over the original) one update with no delete in between, and what
makes a storm of events cost one ingest per file.

When the kernel's inotify queue overflows, events are lost: watchdog rebuilds its watches but only
logs it. A log handler turns that warning into a full reconciliation of every running sync, the
same one as at start-up, so lost changes are found from the disk within seconds, not at the next
start. The watches ask the kernel only for events that change a file: a reconciliation opens and
reads every file, and with watchdog's default mask each open and close was queued too, so on a
big folder the rescan itself overflowed the queue again and again (a livelock).

A polling observer sees a file only if it exists when a snapshot is taken: a file the
reconciliation (or a drop handed over by the app) indexed between two snapshots and deleted
before the next one never produces an event, and would stay in the index until the next start.
So after such an indexing the sync waits for one complete snapshot that began after it, and then
checks every indexed document of its folders against the disk: from then on, the poller knows
each file the index holds, and its deletion is an event.

Nothing fails silently: a batch or a reconciliation that fails (the writer lock held by another
process, a full disk) is retried with back-off, each new failure is reported through
``on_error``, and ``stop`` cancels the work in progress and never waits longer than it is told.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from almanac.core.indexing.ingest import IngestCancelled, Ingestor, posix
from almanac.core.indexing.writer_lock import WriterBusyError
from almanac.core.records import FileError, IngestProgress, IngestReport
from almanac.core.system.discovery import Confinement, is_ignored_name, key_path, walk

# Events that say something about a path's content or existence. Opened/closed-without-write are
# left out on purpose: the Ingestor reading a file produces them, which would loop forever.
_RELEVANT = frozenset({"created", "modified", "deleted", "moved", "closed"})
# The same, as the kernel-side filter: events outside it are never queued by inotify at all, so
# the sync's own reads can't fill (and overflow) the kernel queue. "closed" is close-after-write.
_WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
# Retries of a failed batch or reconciliation wait 1, 2, 4 ... seconds, at most this long.
_MAX_BACKOFF = 60.0


log = logging.getLogger(__name__)

# watchdog's inotify backend logs this (and nothing else tells the application) on IN_Q_OVERFLOW.
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"


class _OverflowAlarm(logging.Handler):
    """Runs on an observer thread: asks every running sync to reconcile, nothing else."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.syncs: weakref.WeakSet[FolderSync] = weakref.WeakSet()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" not in record.getMessage().lower():
            return
        for sync in list(self.syncs):
            sync.request_reconcile("events were lost (inotify queue overflow)")


_ALARM = _OverflowAlarm()


def _arm_overflow_alarm(sync: FolderSync) -> None:
    logger = logging.getLogger(_OVERFLOW_LOGGER)
    if _ALARM not in logger.handlers:
        logger.addHandler(_ALARM)
    # The warning must be emitted even when the application logs only errors.
    if logger.level == logging.NOTSET or logger.level > logging.WARNING:
        logger.setLevel(logging.WARNING)
    _ALARM.syncs.add(sync)


@dataclass(frozen=True, slots=True)
class SyncState:
    watching: bool
    pending: int  # paths waiting to settle or to be applied
    indexing_done: int  # files done in the batch being applied
    indexing_total: int
    last_error: str
    last_sync: float  # time.time() of the last applied batch; 0.0 before the first


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one applied batch changed (the start-up reconciliation is a batch too)."""

    added: int
    updated: int
    unchanged: int
    removed: int
    failed: int
    chunks_embedded: int
    chunks_written: int
    seconds: float
    reconcile: bool = False
    failures: tuple[FileError, ...] = ()  # the files of this batch that could not be indexed

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.failed)


@dataclass(frozen=True, slots=True)
class SyncStats:
    """Running totals since start(): what tests and the UI read to prove nothing ran twice."""

    batches: int = 0
    ingest_calls: int = 0
    files_submitted: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    chunks_written: int = 0
    reconciles: int = 0  # the start-up one, plus one per overflow of the event queue


class _SnapshotClock:
    """Counts a polling observer's snapshots of one folder, through the ``stat`` it is given:
    watchdog's DirectorySnapshot begins with a stat of the watched folder itself. When the count
    has grown by two since a moment, one snapshot that began after that moment is complete."""

    def __init__(self, sync: FolderSync, folder: str) -> None:
        self._sync = sync
        self._folder = folder

    def stat(self, path: str) -> os.stat_result:
        if path == self._folder:
            self._sync._snapshot_started(self._folder)
        return os.stat(path)


@dataclass(slots=True)
class _Pending:
    when: float  # monotonic time of the last event (or of a retry's not-before time)
    tree: bool  # a folder appeared here: index everything under it


class _Recorder(FileSystemEventHandler):
    """Runs on the observer thread: record paths and wake the sync thread, nothing else."""

    def __init__(self, sync: FolderSync, root: Path) -> None:
        self._sync = sync
        self._root = root

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _RELEVANT:
            return
        # A folder's "modified" only means a child changed; the child has its own event.
        if event.is_directory and event.event_type in ("modified", "closed"):
            return
        paths: list[tuple[str, bool]] = []
        src = os.fsdecode(event.src_path)
        if event.event_type == "moved":
            dest = os.fsdecode(event.dest_path)
            paths.append((src, False))
            paths.append((dest, event.is_directory))
        else:
            paths.append((src, event.is_directory and event.event_type == "created"))
        self._sync._record(self._root, paths, moved=event.event_type == "moved")


class FolderSync:
    """Watch folders recursively and keep the knowledge base equal to them.

    ``start()`` reconciles first (one ``ingest(folders, prune=True)`` on the sync thread, so it
    finds what changed while the app was closed) and then follows live events. Per-file errors
    land in the store as document status and never stop the sync thread.
    """

    def __init__(
        self,
        ingestor: Ingestor,
        folders: Sequence[Path],
        *,
        polling: bool = False,
        polling_interval: float = 1.0,
        quiet_period: float = 0.3,
        max_batch: int = 1000,
        on_state: Callable[[SyncState], None] | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
        on_progress: Callable[[IngestProgress], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if not folders:
            raise ValueError("no folder to watch")
        self.ingestor = ingestor
        self.folders = [Path(os.path.abspath(f)) for f in folders]
        self.polling = polling
        self.polling_interval = polling_interval
        self.quiet_period = quiet_period
        self.max_batch = max_batch
        self._on_state = on_state
        self._on_batch = on_batch
        self._on_progress = on_progress
        self._on_error = on_error
        self._confinement = Confinement(self.folders)
        self._kb_prefix = posix(ingestor.store.kb_dir).rstrip("/") + "/"

        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._partner: dict[str, str] = {}  # both ends of a move, applied in the same batch
        self._stop = threading.Event()
        self._cancel = threading.Event()  # set by stop(): the ingest in progress ends early
        self._busy = False
        self._wakes = 0  # bumped when the sync thread must re-check: see _record
        self._reconciled = threading.Event()
        self._reconcile_reason = ""  # set: reconcile again before the next batch (see overflow)
        self._reconcile_due = 0.0  # monotonic time before which a failed one is not retried
        self._reconcile_failures = 0
        self._batch_failures = 0
        # Polling only: snapshots begun per folder, and the counts at which the index must be
        # checked against the disk (see the module's docstring); empty when nothing is due.
        self._snapshots: dict[str, int] = {}
        self._verify_at: dict[str, int] = {}
        self._observers: list[BaseObserver] = []
        self._thread: threading.Thread | None = None

        self._stats = SyncStats()
        self._last_error = ""
        self._last_sync = 0.0
        self._done = 0
        self._total = 0
        self._last_state: SyncState | None = None
        self._emit_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for folder in self.folders:
            if not folder.is_dir():
                raise FileNotFoundError(f"no such folder: {folder}")
        _arm_overflow_alarm(self)
        # Observers first: an edit made during the reconciliation is then recorded, not lost.
        for folder in self.folders:
            observer: BaseObserver
            if self.polling:
                clock = _SnapshotClock(self, str(folder))
                observer = PollingObserverVFS(
                    clock.stat, os.scandir, polling_interval=self.polling_interval
                )
            else:
                observer = Observer()
            observer.schedule(
                _Recorder(self, folder), str(folder), recursive=True, event_filter=_WATCHED_EVENTS
            )
            observer.daemon = True
            observer.start()
            self._observers.append(observer)
        self._thread = threading.Thread(target=self._run, name="almanac-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop watching, cancel the batch in progress (what it committed stays), join. Unapplied
        paths are left to the next start-up reconciliation, which finds them from the disk.

        Returns False when the sync thread was still busy after ``timeout`` seconds (it is a
        daemon thread: a process may exit anyway, as safely as after a crash)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._stop.set()
        self._cancel.set()
        _ALARM.syncs.discard(self)
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(_left(deadline))
        self._observers.clear()
        with self._cond:
            self._wake()
        stopped = True
        if self._thread is not None:
            self._thread.join(_left(deadline))
            stopped = not self._thread.is_alive()
            self._thread = None
        self._emit_state(force=True)
        return stopped

    def __enter__(self) -> FolderSync:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- observation --------------------------------------------------------------------------

    @property
    def stats(self) -> SyncStats:
        return self._stats

    @property
    def state(self) -> SyncState:
        with self._cond:
            pending = len(self._pending)
        return SyncState(
            watching=bool(self._observers) and not self._stop.is_set(),
            pending=pending,
            indexing_done=self._done,
            indexing_total=self._total,
            last_error=self._last_error,
            last_sync=self._last_sync,
        )

    def wait_idle(self, timeout: float) -> bool:
        """True once reconciled with nothing pending and no batch running (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (
                self._reconciled.is_set()
                and not self._pending
                and not self._busy
                and not self._reconcile_reason
                and not self._verify_at
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def request_reconcile(self, reason: str) -> None:
        """Compare the whole knowledge base with the disk again, before the next batch: for when
        change events may have been lost. Cheap; any thread."""
        with self._cond:
            self._reconcile_reason = reason
            self._reconcile_due = 0.0
            self._wake()

    def take_over(self, paths: Iterable[Path]) -> list[Path]:
        """Index these paths as if their change events had arrived; returns the ones this sync
        does not watch (the caller indexes those). For files written into a watched folder by
        the app itself (a drop): their own events land on the same pending entry, so the file
        is indexed once, after the quiet period, instead of once by the caller and again here."""
        others: list[Path] = []
        by_root: dict[Path, list[tuple[str, bool]]] = {}
        for path in paths:
            absolute = Path(os.path.abspath(path))
            root = next((f for f in self.folders if f == absolute or f in absolute.parents), None)
            if root is None or self._stop.is_set() or not self._watchable(root, posix(absolute)):
                others.append(path)
                continue
            by_root.setdefault(root, []).append((str(absolute), absolute.is_dir()))
        for root, entries in by_root.items():
            self._record(root, entries, moved=False)
        if by_root:
            # Written by the app, perhaps between two snapshots: the poller may never see them.
            self._verify_after_next_snapshot()
        return others

    # -- the observer side (cheap, never blocks on indexing) -----------------------------------

    def _record(self, root: Path, paths: Iterable[tuple[str, bool]], *, moved: bool) -> None:
        now = time.monotonic()
        kept: list[str] = []
        with self._cond:
            was_empty = not self._pending
            for raw, tree in paths:
                path = posix(Path(raw))
                if not self._watchable(root, path):
                    continue
                entry = self._pending.get(path)
                if entry is None:
                    self._pending[path] = _Pending(now, tree)
                else:
                    entry.when = now
                    entry.tree = entry.tree or tree
                kept.append(path)
            if moved and len(kept) == 2:
                self._partner[kept[0]] = kept[1]
                self._partner[kept[1]] = kept[0]
            # Only a first pending path can bring the next due time forward: a later event is
            # always due after the ones already waiting, so a storm of events costs no wake-ups.
            if was_empty and self._pending:
                self._wake()

    def _watchable(self, root: Path, path: str) -> bool:
        if path.startswith(self._kb_prefix):
            return False  # a knowledge base inside a watched folder must not index itself
        rel = os.path.relpath(path, posix(root))
        if rel == "." or rel.startswith(".."):
            return False
        # Hidden folders too, like discovery.walk: a file under .git/ is never indexed.
        return not any(is_ignored_name(part) for part in rel.split(os.sep))

    # -- polling: making sure the poller has seen what the index holds -------------------------

    def _snapshot_started(self, folder: str) -> None:
        """On a polling observer's thread."""
        with self._cond:
            self._snapshots[folder] = self._snapshots.get(folder, 0) + 1
            if self._verify_at and self._verify_due():
                self._wake()

    def _verify_after_next_snapshot(self) -> None:
        if not self.polling:
            return
        with self._cond:
            for folder in map(str, self.folders):
                self._verify_at[folder] = self._snapshots.get(folder, 0) + 2
            self._cond.notify_all()

    def _verify_due(self) -> bool:
        """Caller holds the lock."""
        return bool(self._verify_at) and all(
            self._snapshots.get(folder, 0) >= due for folder, due in self._verify_at.items()
        )

    def _verify(self) -> None:
        """Every indexed document of these folders that is gone from the disk becomes a pending
        path, removed by the next batch like any other deletion."""
        with self._cond:
            self._verify_at.clear()
        known = self.ingestor.store.documents()
        by_root: dict[Path, list[tuple[str, bool]]] = {}
        for path in known:
            p = key_path(path)
            root = next((f for f in self.folders if f in p.parents), None)
            if root is not None and not os.path.lexists(p):
                by_root.setdefault(root, []).append((str(p), False))
        for root, entries in by_root.items():
            self._record(root, entries, moved=False)
        with self._cond:
            self._cond.notify_all()

    # -- the sync thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._reconcile()
        finally:
            with self._cond:
                self._reconciled.set()
                self._cond.notify_all()
        while not self._stop.is_set():
            try:
                with self._cond:
                    reason = ""
                    if self._reconcile_reason and time.monotonic() >= self._reconcile_due:
                        reason, self._reconcile_reason = self._reconcile_reason, ""
                if reason:
                    log.warning("%s: comparing every file with the index again", reason)
                    self._reconcile()
                    continue
                with self._cond:
                    verify = self._verify_due()
                if verify:
                    self._verify()
                    continue
                batch = self._next_batch()
                if batch:
                    self._apply(batch)
            except Exception as exc:  # a bug here must not silently end live sync
                self._fail(f"sync failed: {type(exc).__name__}: {exc}")
                self._set_busy(False)
                self._stop.wait(0.5)

    def _reconcile(self) -> None:
        start = time.perf_counter()
        self._set_busy(True)
        try:
            report = self.ingestor.ingest(
                self.folders,
                prune=True,
                progress=self._progress,
                cancel=self._cancel,
                roots=self.folders,
                on_wait=self._fail,
                wait_for_ocr=False,  # scans are written by the OCR lane when read
            )
        except IngestCancelled:
            pass  # stopping: the next start reconciles
        except Exception as exc:  # the thread must survive anything; retried with back-off
            self._reconcile_failures += 1
            delay = _backoff(self._reconcile_failures)
            what = str(exc) if isinstance(exc, WriterBusyError) else _describe(exc)
            self._fail(
                f"comparing the folders with the index failed: {what} (retrying in {delay:.0f} s)"
            )
            with self._cond:
                self._reconcile_reason = self._reconcile_reason or "retrying the failed comparison"
                self._reconcile_due = time.monotonic() + delay
                self._wake()
        else:
            self._reconcile_failures = 0
            self._verify_after_next_snapshot()
            self._recovered()
            self._account(report, 0, start, reconcile=True, calls=1, files=report.unchanged)
        finally:
            self._set_busy(False)

    def _next_batch(self) -> dict[str, _Pending]:
        """Block until some paths have settled (or stop); take up to ``max_batch`` of them."""
        while not self._stop.is_set():
            with self._cond:
                if self._reconcile_reason and time.monotonic() >= self._reconcile_due:
                    return {}  # the caller reconciles first
                if self._verify_due():
                    return {}  # the caller checks the index against the disk first
                batch: dict[str, _Pending] = {}
                soonest: float | None = self._reconcile_due
                if not self._reconcile_reason:
                    batch, soonest = self._take_settled()
                # else a failed reconciliation waits for its retry: batches wait with it, as
                # they would meet the same failure.
                if batch:
                    self._busy = True
                    return batch
                wakes = self._wakes
            # Reported outside the lock: a slow callback must never hold up the observer thread.
            self._emit_state()
            with self._cond:
                if self._wakes == wakes and not self._stop.is_set():
                    timeout = None if soonest is None else max(0.0, soonest - time.monotonic())
                    self._cond.wait(timeout)
        return {}

    def _take_settled(self) -> tuple[dict[str, _Pending], float | None]:
        """The settled paths (caller holds the lock), else when the next one will settle."""
        now = time.monotonic()
        settled: list[str] = []
        soonest: float | None = None
        for path, entry in self._pending.items():
            due = entry.when + self.quiet_period
            if due <= now:
                settled.append(path)
                if len(settled) >= self.max_batch:
                    break
            elif soonest is None or due < soonest:
                soonest = due
        batch: dict[str, _Pending] = {}
        for path in settled:
            if path in batch:
                continue  # already taken as the other end of a move
            batch[path] = self._pending.pop(path)
            # A move's other end goes in the same batch even if not yet settled, so the new
            # path is ingested (vectors reused) before the old one is removed.
            other = self._partner.pop(path, None)
            if other is not None:
                self._partner.pop(other, None)
                if other in self._pending:
                    batch[other] = self._pending.pop(other)
        return batch, soonest

    def _apply(self, batch: dict[str, _Pending]) -> None:
        start = time.perf_counter()
        files: list[Path] = []
        vanished: list[str] = []
        for path, entry in batch.items():
            p = key_path(path)
            if p.is_dir():
                if os.path.islink(p) and not self._confinement.allows_path(p):
                    files.append(p)  # a link to a folder elsewhere: the ingest reports it
                elif entry.tree:
                    # A folder moved or copied in: its files may have produced no events of
                    # their own (inotify watches a new folder only once it exists).
                    files.extend(f.path for f in walk(p, self._confinement))
            elif os.path.lexists(p):
                files.append(p)
            else:
                vanished.append(path)
        try:
            # One write: the new and changed paths first (a renamed file's vectors are reused
            # from its old path), then the vanished ones, re-checked on the disk under the lock.
            report, removed = self.ingestor.apply_changes(
                _unique(files),
                vanished,
                progress=self._progress,
                cancel=self._cancel,
                roots=self.folders,
                on_wait=self._fail,
            )
        except IngestCancelled:
            self._set_busy(False)  # stopping: the next start reconciles
            return
        except FileNotFoundError:
            # A file vanished between the look at the disk and the ingest: look again.
            self._requeue(batch, delay=0.0)
            self._set_busy(False)
            return
        except Exception as exc:  # never let one bad batch end live sync: retry it, later
            self._batch_failures += 1
            delay = _backoff(self._batch_failures)
            what = str(exc) if isinstance(exc, WriterBusyError) else _describe(exc)
            noun = "file" if len(batch) == 1 else "files"
            self._fail(
                f"could not update the index for {len(batch)} {noun}: {what} "
                f"(retrying in {delay:.0f} s)"
            )
            self._requeue(batch, delay=delay)
            self._set_busy(False)
            return
        self._batch_failures = 0
        self._recovered()
        if report is None:
            report = IngestReport()
        self._account(report, removed, start, calls=1 if files else 0, files=len(files))
        self._set_busy(False)

    def _requeue(self, batch: dict[str, _Pending], delay: float) -> None:
        when = time.monotonic() + delay
        with self._cond:
            for path, entry in batch.items():
                current = self._pending.get(path)
                if current is None:
                    self._pending[path] = _Pending(when, entry.tree)
                else:
                    current.tree = current.tree or entry.tree
            self._wake()

    def _account(
        self,
        report: IngestReport,
        removed: int,
        start: float,
        *,
        reconcile: bool = False,
        calls: int,
        files: int,
    ) -> None:
        s = self._stats
        removed_total = removed + report.removed
        self._stats = SyncStats(
            batches=s.batches + 1,
            ingest_calls=s.ingest_calls + calls,
            files_submitted=s.files_submitted + (0 if reconcile else files),
            added=s.added + report.added,
            updated=s.updated + report.updated,
            unchanged=s.unchanged + report.unchanged,
            removed=s.removed + removed_total,
            failed=s.failed + len(report.failed),
            chunks_embedded=s.chunks_embedded + report.chunks_embedded,
            chunks_written=s.chunks_written + report.chunks_written,
            reconciles=s.reconciles + (1 if reconcile else 0),
        )
        self._last_sync = time.time()
        result = BatchResult(
            added=report.added,
            updated=report.updated,
            unchanged=report.unchanged,
            removed=removed_total,
            failed=len(report.failed),
            chunks_embedded=report.chunks_embedded,
            chunks_written=report.chunks_written,
            seconds=time.perf_counter() - start,
            reconcile=reconcile,
            failures=report.failed,
        )
        if self._on_batch is not None:
            try:
                self._on_batch(result)
            except Exception as exc:  # a UI callback bug must not end sync
                self._last_error = f"batch callback failed: {exc}"

    def _progress(self, p: IngestProgress) -> None:
        self._done, self._total = p.files_done, p.files_total
        if self._on_progress is not None:
            self._on_progress(p)
        self._emit_state()

    def _set_busy(self, busy: bool) -> None:
        with self._cond:
            self._busy = busy
            if not busy:
                self._done = self._total = 0
            self._cond.notify_all()
        self._emit_state()

    def _fail(self, message: str) -> None:
        """Record a failure of the sync itself; report it once, not at every retry."""
        if message.split(" (retrying in")[0] == self._last_error.split(" (retrying in")[0]:
            self._last_error = message
            return
        self._last_error = message
        log.warning("%s", message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # a UI callback bug must not end sync
                log.exception("sync error callback failed")

    def _recovered(self) -> None:
        if self._last_error:
            self._last_error = ""
            if self._on_error is not None:
                try:
                    self._on_error("")  # empty: the failure is over
                except Exception:
                    log.exception("sync error callback failed")

    def _wake(self) -> None:
        """Wake the sync thread (caller holds the lock)."""
        self._wakes += 1
        self._cond.notify_all()

    def _emit_state(self, force: bool = False) -> None:
        if self._on_state is None:
            return
        # The sync thread and the writer's thread (ingest progress) both report: reading the
        # state and handing it on happen under one lock, so a state read first is never
        # delivered after a newer one (a stale "indexing 3 of 5" after "idle" would stay on
        # screen until the next change). The callback must return quickly.
        with self._emit_lock:
            state = self.state
            if force or state != self._last_state:
                self._last_state = state
                try:
                    self._on_state(state)
                except Exception as exc:  # a UI callback bug must not end sync
                    self._last_error = f"state callback failed: {exc}"


def _unique(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _backoff(failures: int) -> float:
    return float(min(_MAX_BACKOFF, 2 ** min(failures - 1, 16)))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _describe(exc: BaseException) -> str:
    """A failure in words; the type name only where the message alone would not say much."""
    from almanac.core.store.store import StoreError

    if isinstance(exc, StoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
