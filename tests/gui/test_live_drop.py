"""A file dropped on the window while live sync watches the folder it is copied into: indexed
once, by the sync (real window, real watchdog on a real folder, real store)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from almanac.app.history import HistoryStore
from almanac.app.services import Services
from almanac.app.settings import Settings, SettingsStore
from almanac.core.indexing.ingest import Ingestor, posix
from almanac.core.store.store import DocumentWrite, Store
from almanac.ui.main_window import MainWindow
from almanac.ui.workers import ModelWorker, TaskRunner


@pytest.fixture
def window(qtbot, tmp_path: Path, make_kb, embedder, sample_kb: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(sample_kb / "faq.md", docs / "faq.md")
    kb = make_kb()
    kb.ingestor.ingest([docs])
    store = SettingsStore(tmp_path / "settings.json")
    store.save(dataclasses.replace(Settings(), documents_folders=(str(docs),)))
    services = Services(
        store=kb.store, embedder=embedder, ingestor=kb.ingestor, searcher=kb.searcher
    )
    win = MainWindow(
        services,
        store,
        HistoryStore(tmp_path / "history.sqlite3"),
        [docs],
        TaskRunner(),
        ModelWorker(),
    )
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_a_drop_into_a_watched_folder_is_indexed_once(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = window.kb_folders[0]
    written: list[str] = []
    ingested_by_the_window: list[str] = []
    real_write = Store.write_documents
    real_ingest = Ingestor.ingest

    def spy_write(self: Store, writes: Sequence[DocumentWrite]) -> None:
        written.extend(w.info.path for w in writes)
        real_write(self, writes)

    def spy_ingest(self: Ingestor, paths: Sequence[Path], **kwargs: object):  # type: ignore[no-untyped-def]
        ingested_by_the_window.extend(posix(p) for p in paths)
        return real_ingest(self, paths, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "write_documents", spy_write)
    window.start_sync()
    qtbot.waitUntil(
        lambda: window.sync_status.text().startswith("Watching 1 folder"), timeout=60000
    )
    monkeypatch.setattr(Ingestor, "ingest", spy_ingest)  # after the start-up reconciliation

    outside = tmp_path / "outside"
    outside.mkdir()
    note = outside / "kettles.md"
    note.write_text("# Kettles\n\nThe kettle descaler takes 12 minutes.\n", encoding="utf-8")
    target = posix(docs / "kettles.md")
    handle = window.handle_dropped_paths([note])
    assert handle is not None
    qtbot.waitUntil(lambda: handle.done, timeout=60000)
    qtbot.waitUntil(lambda: target in window.services.store.documents(), timeout=60000)
    # A barrier made of events: a file written after the drop, indexed, means the drop's own
    # change events have all been applied too.
    barrier = docs / "barrier.md"
    barrier.write_text("# Barrier\n\nWritten after the drop.\n", encoding="utf-8")
    qtbot.waitUntil(lambda: posix(barrier) in window.services.store.documents(), timeout=60000)

    assert written.count(target) == 1, written
    assert target not in ingested_by_the_window, "the window indexed it as well as the sync"
    doc = window.services.store.document(target)
    assert doc is not None and doc.chunk_count >= 1
    assert "error" not in window.sync_status.text()


def test_changing_the_polling_setting_during_a_big_reconcile(qtbot, window: MainWindow) -> None:
    """apply_settings restarts live sync without waiting for the reconcile in progress: the old
    one is cancelled (it never completes), the new one brings the index up to date."""
    docs = window.kb_folders[0]
    for i in range(300):
        (docs / f"part-{i:03d}.md").write_text(
            f"# Part {i}\n\n" + f"Part {i} sits on shelf {i % 40}. " * 30, encoding="utf-8"
        )
    window.start_sync()
    qtbot.waitUntil(lambda: "indexing" in window.sync_status.text(), timeout=60000)
    old = window.sync._sync
    assert old is not None
    window.apply_settings(dataclasses.replace(window.settings, poll_folders=True))
    assert window.sync._sync is not old
    assert old.stats.reconciles == 0  # returned while the old reconcile had not completed
    new = window.sync._sync
    assert new is not None and new.polling
    assert new.wait_idle(240)
    assert old.stats.reconciles == 0  # cancelled, never completed
    expected = {posix(p) for p in docs.iterdir()}
    assert set(window.services.store.documents()) == expected
