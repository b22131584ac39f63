"""The window's side of the library use case (``almanac.app.library.Library``): one ``changed``
signal, delivered on the GUI thread, for every change to the index — the window's own writes (add,
re-index, remove, include, delete, start-up indexing) and live sync's batches alike. The library
view refreshes on it instead of after each call site."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from almanac.app.library import Library, LibraryChange
from almanac.core.indexing.ingest import Ingestor
from almanac.core.indexing.sync import BatchResult
from almanac.ui.sync_bridge import SyncBridge


class LibraryController(QObject):
    changed = Signal(object)  # LibraryChange

    def __init__(
        self,
        ingestor: Ingestor,
        folders: Sequence[Path],
        sync: SyncBridge,
        *,
        copy_added: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        # Files copied into a folder that live sync watches are left to it (indexed once).
        self.library = Library(
            ingestor, folders, copy_added=copy_added, sync=sync, on_change=self.announce
        )
        sync.batch.connect(self._on_batch)

    def configure(self, folders: Sequence[Path], *, copy_added: bool) -> None:
        """The documents folders or the copy setting changed (Settings)."""
        self.library.folders = [Path(f) for f in folders]
        self.library.copy_added = copy_added

    def announce(self, change: LibraryChange) -> None:
        """Any thread: Qt queues the signal to the GUI thread's receivers."""
        self.changed.emit(change)

    def _on_batch(self, _result: BatchResult) -> None:
        self.changed.emit(LibraryChange())
