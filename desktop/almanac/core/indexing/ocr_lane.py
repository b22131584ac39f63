"""The slow lane: OCR outside the index writer.

Reading a scan costs seconds a page (a 300-page manual is many minutes on 2 cores). Inside the
writer's job it would hold the one writer queue for all that time, and a Markdown edit saved
meanwhile would wait behind it. So the writer's read stage *defers* a file whose OCR is not done
yet (the document keeps its previous version, if any, until the new one is complete), and this
lane reads it on its own thread, filling the OCR cache. Then it asks the writer to index the file
again: the pages come from the cache, and that write is as quick as for a text PDF.

The lane shows progress (file, pages done, pages to read, files waiting) and is cancelled per
file or as a whole; a cancelled file is simply not indexed (its previous version stays).

A deferred file's row in the store says ``pending`` (with no hash) until the lane's write replaces
it, so ``almanac status``, in another process, lists the scans still waiting for OCR; one left
pending when the process stopped (closed, cancelled) is read again by the next ingest or start.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from almanac.core.documents import DocumentError, open_document_file, parse_document
from almanac.core.documents.ocr import OcrCancelled, ocr_context
from almanac.core.records import IngestReport
from almanac.core.system.discovery import Confinement

log = logging.getLogger(__name__)

# Lanes still running at interpreter exit are stopped first: a daemon thread killed inside an
# onnxruntime call aborts the process ("terminate called without an active exception").
_LANES: weakref.WeakSet[OcrLane] = weakref.WeakSet()


@atexit.register
def _stop_lanes() -> None:
    for lane in list(_LANES):
        lane.stop(timeout=5.0)


# (path, the roots it may be read under, a stop event) -> the writer's report for that file
IndexAgain = Callable[[Path, Sequence[Path], threading.Event], IngestReport | None]


@dataclass(frozen=True, slots=True)
class OcrProgress:
    current: str  # the file being read ("" when idle)
    pages_done: int
    pages_total: int
    files_waiting: int  # queued behind the current one


@dataclass
class _Item:
    path: Path
    roots: tuple[Path, ...]
    future: Future[IngestReport | None]
    cancel: threading.Event


class OcrLane:
    """One background thread reading deferred files by OCR, then handing them to the writer."""

    def __init__(
        self,
        index_again: IndexAgain,
        *,
        max_file_bytes: int,
        on_progress: Callable[[OcrProgress], None] | None = None,
    ) -> None:
        self._index_again = index_again
        self._max_file_bytes = max_file_bytes
        self.on_progress = on_progress
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._lock = threading.Lock()
        self._items: dict[str, _Item] = {}  # queued or running, by path
        self._current: _Item | None = None
        self._pages = (0, 0)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition(self._lock)
        # Taken around reading the progress and handing it to on_progress: the writer's thread
        # (submit) and the lane's thread both report, and a snapshot taken first but delivered
        # second told the status bar "nothing being read" in the middle of a scan (it announced
        # the scan as done, and its page 2 of 2 was never shown).
        self._report_lock = threading.Lock()
        # Files whose OCR this lane finished: the writer reads them inline next time, even if
        # the cache could not be written (no loop of deferrals).
        self._finished: set[str] = set()
        self._reports: list[IngestReport] = []  # of the writes after OCR, in order
        _LANES.add(self)

    # -- used by the writer's read stage --------------------------------------------------------

    def submit(self, path: Path, roots: Sequence[Path]) -> Future[IngestReport | None]:
        """Queue ``path`` (once: a file already waiting keeps its place)."""
        key = str(path)
        with self._lock:
            existing = self._items.get(key)
            if existing is not None and not existing.cancel.is_set():
                return existing.future
            item = _Item(path, tuple(roots), Future(), threading.Event())
            self._items[key] = item
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="almanac-ocr-lane", daemon=True
                )
                self._thread.start()
        self._queue.put(item)
        self._report()
        return item.future

    def take_finished(self, path: Path) -> bool:
        """True once for a file whose OCR this lane has just done (read it inline now)."""
        with self._lock:
            if str(path) in self._finished:
                self._finished.discard(str(path))
                return True
            return False

    # -- callers ------------------------------------------------------------------------------

    @property
    def progress(self) -> OcrProgress:
        with self._lock:
            current = self._current
            waiting = len(self._items) - (1 if current is not None else 0)
            return OcrProgress(
                str(current.path) if current else "", *self._pages, files_waiting=waiting
            )

    def reports_mark(self) -> int:
        with self._lock:
            return len(self._reports)

    def reports_since(self, mark: int) -> list[IngestReport]:
        """The writes this lane made after ``reports_mark()`` returned ``mark``."""
        with self._lock:
            return list(self._reports[mark:])

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._items)

    def wait_idle(self, cancel: threading.Event | None = None, poll_s: float = 0.1) -> bool:
        """Block until nothing is queued or running; False when ``cancel`` was set first."""
        with self._done:
            while self._items:
                if cancel is not None and cancel.is_set():
                    return False
                self._done.wait(poll_s)
        return True

    def cancel(self, paths: Sequence[Path] | None = None) -> None:
        """Stop reading ``paths`` (all files when None); they are not indexed."""
        with self._lock:
            items = list(self._items.values())
        wanted = None if paths is None else {str(p) for p in paths}
        for item in items:
            if wanted is None or str(item.path) in wanted:
                item.cancel.set()

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Cancel everything and end the thread (OCR stops between two pages)."""
        self._stopped.set()
        self.cancel()
        self._queue.put(None)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped.is_set():
            item = self._queue.get()
            if item is None:
                break
            with self._lock:
                self._current = item
                self._pages = (0, 0)
            try:
                report = self._read(item)
            except Exception as exc:  # the lane must outlive one bad file
                log.exception("OCR lane: %s", item.path)
                item.future.set_exception(exc)
            else:
                item.future.set_result(report)
                if report is not None:
                    with self._lock:
                        self._reports.append(report)
            finally:
                with self._done:
                    if self._items.get(str(item.path)) is item:
                        del self._items[str(item.path)]
                    self._current = None
                    self._done.notify_all()
                self._report()
        with self._done:
            for item in self._items.values():
                item.future.cancel()
            self._items.clear()
            self._done.notify_all()

    def _read(self, item: _Item) -> IngestReport | None:
        if item.cancel.is_set():
            return None
        try:
            with open_document_file(item.path, Confinement(list(item.roots))) as opened:
                data = opened.read_all(self._max_file_bytes)
            with ocr_context(item.cancel, lambda done, total: self._page(done, total)):
                parse_document(item.path, data)  # fills the OCR cache; the writer reads it
        except OcrCancelled:
            return None
        except (DocumentError, OSError):
            pass  # the writer's own read reports this file's error in words
        with self._lock:
            self._finished.add(str(item.path))
        return self._index_again(item.path, item.roots, item.cancel)

    def _page(self, done: int, total: int) -> None:
        with self._lock:
            self._pages = (done, total)
        self._report()

    def _report(self) -> None:
        """Hand the progress to ``on_progress``, which must return quickly (the other thread
        waits to report its own)."""
        with self._report_lock:
            callback = self.on_progress
            if callback is None:
                return
            try:
                callback(self.progress)
            except Exception:  # a progress display must not stop the lane
                log.exception("OCR progress callback failed")
