"""The window's documents and library: the use cases of ``almanac.app.library.Library`` (add,
re-index, remove) and the window's own (start-up indexing, include again, delete to the trash)
run on the ``TaskRunner``'s threads, never on the GUI thread.

Every change to the index — these writes and live sync's batches alike — is announced by one
``changed`` signal, delivered on the GUI thread; the library view refreshes on it instead of after
each call site. How a write went comes back on ``ingest_started``, ``ingest_progress``,
``ingest_done`` and ``ingest_failed``, for the status bar and the notice."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QFile, QObject, QStandardPaths, Signal

from almanac.app.library import Library, LibraryChange, is_inside
from almanac.core.records import DocumentInfo, DocumentStatus, IngestReport
from almanac.core.system.discovery import key_path, path_key
from almanac.ui.sync_bridge import SyncBridge
from almanac.ui.workers import ProgressFn, TaskCancelled, TaskHandle, TaskRunner

if TYPE_CHECKING:
    # Made when the services are (behind the window): this module loads none of the core's
    # numpy and LanceDB modules itself.
    from almanac.core.indexing.ingest import Ingestor
    from almanac.core.indexing.sync import BatchResult


class LibraryController(QObject):
    changed = Signal(object)  # LibraryChange
    ingest_started = Signal(str)  # label
    ingest_progress = Signal(str, object)  # label, IngestProgress
    ingest_done = Signal(object)  # IngestReport
    ingest_failed = Signal(str)

    def __init__(
        self,
        ingestor: Ingestor,
        folders: Sequence[Path],
        sync: SyncBridge,
        runner: TaskRunner,
        *,
        copy_added: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ingestor = ingestor
        self.runner = runner
        # Files copied into a folder that live sync watches are left to it (indexed once).
        self.library = Library(
            ingestor, folders, copy_added=copy_added, sync=sync, on_change=self.announce
        )
        sync.batch.connect(self._on_batch)
        self._ingests: list[TaskHandle] = []
        # Keys of dropped files copied into the documents folder and not yet indexed ("/" at
        # the end: a folder). Filled by add tasks, read on the GUI thread.
        self._fresh_copies: set[str] = set()
        self._fresh_lock = threading.Lock()

    @property
    def folders(self) -> list[Path]:
        return list(self.library.folders)

    def configure(self, folders: Sequence[Path], *, copy_added: bool) -> None:
        """The documents folders or the copy setting changed (Settings)."""
        self.library.folders = [Path(f) for f in folders]
        self.library.copy_added = copy_added

    def announce(self, change: LibraryChange) -> None:
        """Any thread: Qt queues the signal to the GUI thread's receivers."""
        self.changed.emit(change)

    def _on_batch(self, _result: BatchResult) -> None:
        self.changed.emit(LibraryChange())

    # -- writes -------------------------------------------------------------------------------

    def add(self, paths: Sequence[Path]) -> TaskHandle:
        """Copy into the first documents folder (or index in place), then index them; what live
        sync watches is left to it."""
        library = self.library
        fresh, fresh_lock = self._fresh_copies, self._fresh_lock
        paths = list(paths)

        def copied(dest: Path) -> None:
            with fresh_lock:
                fresh.add(path_key(dest) + ("/" if dest.is_dir() else ""))

        def work(progress: ProgressFn, cancel: threading.Event) -> IngestReport:
            return library.add(paths, progress=progress, cancel=cancel, on_copy=copied)

        return self._run_ingest(work, "Adding documents")

    def index_folders(self, folders: Sequence[Path] | None = None) -> TaskHandle:
        """Bring the index up to date with the documents folders (start-up, settings change)."""
        targets = [Path(f) for f in (folders if folders is not None else self.library.folders)]
        ingestor, announce = self.ingestor, self.announce

        def work(progress: ProgressFn, cancel: threading.Event) -> IngestReport:
            present = [t for t in targets if t.exists()]
            report = ingestor.ingest(present, progress=progress, cancel=cancel)
            announce(LibraryChange(indexed=tuple(present), report=report))
            return report

        return self._run_ingest(work, "Indexing")

    def reindex(self, paths: Sequence[str]) -> TaskHandle:
        library = self.library
        targets = [Path(p) for p in paths]

        def work(progress: ProgressFn, cancel: threading.Event) -> IngestReport:
            return library.reindex(targets, progress=progress, cancel=cancel)

        return self._run_ingest(work, "Re-indexing")

    def remove(self, keys: Sequence[str], on_done: Callable[[int], None]) -> TaskHandle:
        """Out of the index, kept on disk, and excluded until included again."""
        library = self.library
        keys = list(keys)

        def work(_progress: ProgressFn, cancel: threading.Event) -> int:
            return library.remove(keys, cancel=cancel)

        return self.runner.submit(work, on_success=on_done, on_error=self.ingest_failed.emit)

    def delete(
        self, keys: Sequence[str], on_done: Callable[[tuple[int, list[str]]], None]
    ) -> TaskHandle:
        """The files to the trash (only files inside the documents folders), then out of the
        index. ``on_done`` hears how many went and why the others stayed."""
        ingestor, announce = self.ingestor, self.announce
        roots = list(self.library.folders)
        keys = list(keys)

        def work(_progress: ProgressFn, _cancel: threading.Event) -> tuple[int, list[str]]:
            gone: list[Path] = []
            kept: list[str] = []
            # Qt's trash needs the data folder to exist (a fresh account may not have it yet).
            data = QStandardPaths.writableLocation(
                QStandardPaths.StandardLocation.GenericDataLocation
            )
            with contextlib.suppress(OSError):
                Path(data).mkdir(parents=True, exist_ok=True)
            for key in keys:
                path = key_path(key)
                inside = is_inside(path, roots)
                if inside is None or not (path.is_file() or path.is_symlink()):
                    kept.append(f"{path.name} (not a file in your documents folders)")
                elif QFile.moveToTrash(str(path)):
                    gone.append(path)
                else:
                    kept.append(f"{path.name} (the trash refused it)")
            count = ingestor.remove(gone) if gone else 0
            announce(LibraryChange(removed=tuple(path_key(p) for p in gone)))
            return count, kept

        return self.runner.submit(work, on_success=on_done, on_error=self.ingest_failed.emit)

    def include_again(self, keys: Sequence[str]) -> TaskHandle:
        """Excluded documents back into the index (those still on disk)."""
        library = self.library
        keys = list(keys)

        def work(progress: ProgressFn, cancel: threading.Event) -> IngestReport:
            return library.include_again(keys, progress=progress, cancel=cancel)

        return self._run_ingest(work, "Including")

    def remove_copies(self, keys: Sequence[str], on_done: Callable[[int], None]) -> TaskHandle:
        """Our own copies of dropped files off the disk and out of the index (the originals
        are where they were)."""
        ingestor, announce = self.ingestor, self.announce
        keys = list(keys)

        def work(_progress: ProgressFn, _cancel: threading.Event) -> int:
            for key in keys:
                with contextlib.suppress(FileNotFoundError):
                    key_path(key).unlink()
            count = ingestor.remove([key_path(k) for k in keys])
            announce(LibraryChange(removed=tuple(keys)))
            return count

        return self.runner.submit(work, on_success=on_done, on_error=self.ingest_failed.emit)

    # -- dropped copies -------------------------------------------------------------------------

    def failed_copies(self, documents: Sequence[DocumentInfo]) -> list[DocumentInfo]:
        """Of ``documents`` (the index now), the copies of dropped files that failed to index
        (by the window's task or by live sync); each settled copy is forgotten, so the user is
        asked about a copy once."""
        with self._fresh_lock:
            if not self._fresh_copies:
                return []
            fresh = set(self._fresh_copies)

        def is_fresh(key: str) -> bool:
            return key in fresh or any(f.endswith("/") and key.startswith(f) for f in fresh)

        failed = [d for d in documents if d.status is DocumentStatus.ERROR and is_fresh(d.path)]
        settled = {d.path for d in documents if is_fresh(d.path)}
        with self._fresh_lock:
            self._fresh_copies -= {k for k in fresh if k in settled or k.endswith("/")}
        return failed

    # -- the tasks ------------------------------------------------------------------------------

    def is_indexing(self) -> bool:
        return any(not h.done for h in self._ingests)

    def cancel_all(self) -> None:
        for handle in self._ingests:
            handle.cancel()

    def _run_ingest(
        self, work: Callable[[ProgressFn, threading.Event], IngestReport], label: str
    ) -> TaskHandle:
        holder: list[TaskHandle] = []

        def forget() -> None:
            if holder and holder[0] in self._ingests:
                self._ingests.remove(holder[0])

        def success(report: IngestReport) -> None:
            forget()
            self.ingest_done.emit(report)

        def failure(message: str) -> None:
            forget()
            self.ingest_failed.emit(message)

        from almanac.core.indexing.ingest import IngestCancelled  # loaded with the ingestor

        def wrapped(progress: ProgressFn, cancel: threading.Event) -> IngestReport:
            try:
                return work(progress, cancel)
            except IngestCancelled as exc:
                raise TaskCancelled() from exc

        handle = self.runner.submit(
            wrapped,
            on_success=success,
            on_error=failure,
            on_progress=lambda p: self.ingest_progress.emit(label, p),
        )
        holder.append(handle)
        self._ingests.append(handle)
        self.ingest_started.emit(label)
        return handle
