"""Live folder sync for the window: the core FolderSync, its callbacks turned into Qt signals.

FolderSync calls back on its own thread; widgets may only be touched on the GUI thread, so every
callback is re-emitted as a signal, which Qt queues across threads.

Stopping never blocks the GUI thread for the length of a batch: the sync's work in progress is
cancelled and waited for only as long as the caller says (by default not at all). A sync started
again at once queues its reconciliation behind what is left of the old one on the knowledge
base's one writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    # The sync (watchdog, the ingestor's numpy and LanceDB) loads when it starts, after the
    # window is on screen.
    from almanac.core.indexing.ingest import Ingestor
    from almanac.core.indexing.sync import BatchResult, FolderSync, SyncState


class SyncBridge(QObject):
    state = Signal(object)  # SyncState
    batch = Signal(object)  # BatchResult

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sync: FolderSync | None = None
        # Which sync may still speak: a stopped one may finish its batch after a new one started,
        # and its callbacks must not overwrite what the new one reports.
        self._generation = 0

    @property
    def running(self) -> bool:
        return self._sync is not None

    def start(self, ingestor: Ingestor, folders: Sequence[Path], *, polling: bool = False) -> None:
        """(Re)start watching; the sync thread reconciles with the disk first."""
        self.stop()
        existing = [f for f in folders if f.is_dir()]
        if not existing:
            return
        self._generation += 1
        generation = self._generation
        from almanac.core.indexing.sync import FolderSync

        sync = FolderSync(
            ingestor,
            existing,
            polling=polling,
            on_state=lambda state: self._emit_state(generation, state),
            on_batch=lambda result: self._emit_batch(generation, result),
        )
        sync.start()
        self._sync = sync

    def stop(self, timeout: float = 0.0) -> bool:
        """Stop watching and cancel the batch in progress; wait at most ``timeout`` seconds for
        it. True when the sync had ended by then (the rest ends on its own, in the background)."""
        if self._sync is None:
            return True
        sync, self._sync = self._sync, None
        self._generation += 1
        return sync.stop(timeout=timeout)

    def take_over(self, paths: Iterable[Path]) -> list[Path]:
        """Let the running sync index the paths it watches (once, with their own change events);
        returns the others. Any thread."""
        sync = self._sync
        if sync is None:
            return list(paths)
        return sync.take_over(paths)

    def _emit_state(self, generation: int, state: SyncState) -> None:
        if generation == self._generation:
            self.state.emit(state)

    def _emit_batch(self, generation: int, result: BatchResult) -> None:
        if generation == self._generation:
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
