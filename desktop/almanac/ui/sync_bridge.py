"""Live folder sync for the window: the core FolderSync, its callbacks turned into Qt signals.

FolderSync calls back on its own thread; widgets may only be touched on the GUI thread, so every
callback is re-emitted as a signal, which Qt queues across threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from almanac.core.indexing.ingest import Ingestor
from almanac.core.indexing.sync import BatchResult, FolderSync, SyncState


class SyncBridge(QObject):
    state = Signal(object)  # SyncState
    batch = Signal(object)  # BatchResult

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sync: FolderSync | None = None

    @property
    def running(self) -> bool:
        return self._sync is not None

    def start(self, ingestor: Ingestor, folders: Sequence[Path], *, polling: bool = False) -> None:
        """(Re)start watching; the sync thread reconciles with the disk first."""
        self.stop()
        existing = [f for f in folders if f.is_dir()]
        if not existing:
            return
        sync = FolderSync(
            ingestor,
            existing,
            polling=polling,
            on_state=self._emit_state,
            on_batch=self._emit_batch,
        )
        sync.start()
        self._sync = sync

    def stop(self) -> None:
        if self._sync is not None:
            sync, self._sync = self._sync, None
            sync.stop()

    def _emit_state(self, state: SyncState) -> None:
        self.state.emit(state)

    def _emit_batch(self, result: BatchResult) -> None:
        self.batch.emit(result)


def describe_state(state: SyncState, folders: int) -> str:
    """The status-bar line: what the sync is doing now."""
    if not state.watching:
        return "Not watching"
    text = f"Watching {folders} folder{'s' if folders != 1 else ''}"
    if state.indexing_total:
        text += f" · indexing {state.indexing_done} of {state.indexing_total}"
    elif state.pending:
        text += f" · {state.pending} change{'s' if state.pending != 1 else ''} pending"
    if state.last_error:
        text += f" · error: {state.last_error}"
    return text
