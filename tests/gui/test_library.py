"""The library without surprises: Remove asks; "remove from index" keeps the file on disk and out
of the index across a restart (listed as excluded) until included again; "delete the file" sends
it to the trash; dropped files that fail to index are not left behind silently; Open says when no
program can open a file; columns sort, a filter narrows, the totals count each status."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QDropEvent

from almanac.app.history import HistoryStore
from almanac.app.library import LibraryChange
from almanac.app.services import Services
from almanac.app.settings import Settings, SettingsStore
from almanac.core.records import DocumentInfo, DocumentStatus
from almanac.ui import library_view
from almanac.ui.library_view import LibraryView
from almanac.ui.main_window import MainWindow
from almanac.ui.workers import ModelWorker, TaskRunner


@pytest.fixture
def docs(tmp_path, sample_kb) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(sample_kb / "faq.md", folder / "faq.md")
    (folder / "notes.txt").write_text("Widgets are calibrated every spring.\n", encoding="utf-8")
    return folder


@pytest.fixture
def start(qtbot, tmp_path, make_kb, embedder, docs):
    """Starts the app's window over the knowledge base in tmp_path/kb; each call is a new start
    (new store, ingestor and window over the same folders)."""
    settings_path = tmp_path / "settings.json"
    SettingsStore(settings_path).save(Settings(documents_folders=(str(docs),)))
    windows: list[MainWindow] = []

    def factory() -> MainWindow:
        kb = make_kb("kb")
        services = Services(
            store=kb.store, embedder=embedder, ingestor=kb.ingestor, searcher=kb.searcher
        )
        window = MainWindow(
            services,
            SettingsStore(settings_path),
            HistoryStore(tmp_path / "history.sqlite3"),
            [docs],
            TaskRunner(),
            ModelWorker(),
        )
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        window.index_folders()  # what a start does (live sync reconciles the same way)
        qtbot.waitUntil(lambda: not window.is_indexing(), timeout=60000)
        window.refresh_library()
        qtbot.waitUntil(lambda: window.library.model.rowCount() > 0, timeout=20000)
        return window

    yield factory
    for window in windows:
        window.close()
        window.services.searcher.close()


def _names(window: MainWindow) -> set[str]:
    return {Path(d.path).name for d in window.library.model.documents()}


def _choose(monkeypatch, choice: str) -> list[list[str]]:
    asked: list[list[str]] = []

    def confirm(_self: LibraryView, paths: list[str]) -> str:
        asked.append(list(paths))
        return choice

    monkeypatch.setattr(LibraryView, "confirm_remove", confirm)
    return asked


def test_remove_from_index_keeps_the_file_excluded_across_a_restart(
    qtbot, start, docs, monkeypatch
) -> None:
    window = start()
    assert _names(window) == {"faq.md", "notes.txt"}
    asked = _choose(monkeypatch, library_view.REMOVE_FROM_INDEX)
    assert window.library.select_path(str(docs / "faq.md"))
    window.library.remove_button.click()
    assert asked == [[str(docs / "faq.md")]]  # Remove asked first
    qtbot.waitUntil(lambda: _names(window) == {"notes.txt"}, timeout=20000)
    assert (docs / "faq.md").is_file()  # still on disk
    assert window.library.excluded_box.isVisibleTo(window.library)
    assert window.library.excluded_list.item(0).text() == str(docs / "faq.md")
    assert "1 excluded" in window.library.totals.text()
    window.close()

    again = start()  # the next start reconciles the folder: the file stays out
    assert _names(again) == {"notes.txt"}
    assert again.library.excluded_list.count() == 1
    again.library.excluded_list.item(0).setSelected(True)
    again.library.include_button.click()
    qtbot.waitUntil(lambda: _names(again) == {"faq.md", "notes.txt"}, timeout=60000)
    assert again.library.excluded_list.count() == 0
    assert not again.library.excluded_box.isVisibleTo(again.library)


def test_cancel_removes_nothing_and_delete_sends_the_file_to_the_trash(
    qtbot, start, docs, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # the trash of this test
    window = start()
    _choose(monkeypatch, "")
    window.library.select_path(str(docs / "notes.txt"))
    window.library.remove_button.click()
    qtbot.wait(200)
    assert _names(window) == {"faq.md", "notes.txt"}

    _choose(monkeypatch, library_view.DELETE_FILE)
    window.library.select_path(str(docs / "notes.txt"))
    window.library.remove_button.click()
    qtbot.waitUntil(lambda: _names(window) == {"faq.md"}, timeout=20000)
    assert not (docs / "notes.txt").exists()
    trashed = list((tmp_path / "xdg-data").rglob("notes*.txt"))
    assert trashed and trashed[0].read_text(encoding="utf-8").startswith("Widgets")
    assert window.library.excluded_list.count() == 0  # deleted, not excluded


def test_a_dropped_file_that_fails_to_index_is_not_left_behind(
    qtbot, start, docs, tmp_path, monkeypatch
) -> None:
    window = start()
    outside = tmp_path / "outside"
    outside.mkdir()
    broken = outside / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a PDF")
    asked: list[list[str]] = []

    def keep(_self: MainWindow, names: list[str]) -> bool:
        asked.append(list(names))
        return False  # remove the copies

    monkeypatch.setattr(MainWindow, "confirm_keep_failed", keep)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(broken))])
    event = QDropEvent(
        QPointF(QPoint(50, 50)),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    qtbot.waitUntil(lambda: bool(asked), timeout=60000)
    assert asked == [["broken.pdf"]]
    qtbot.waitUntil(lambda: not (docs / "broken.pdf").exists(), timeout=20000)
    qtbot.waitUntil(lambda: "broken.pdf" not in _names(window), timeout=20000)
    assert broken.is_file()  # the user's original is untouched
    assert "Removed the copies" in window.notice.text()


def test_each_write_is_announced_once_and_the_view_follows_the_announcement(
    qtbot, start, docs, tmp_path, monkeypatch
) -> None:
    window = start()  # no live sync here: every change below is the window's own write
    changes: list[LibraryChange] = []
    window.library_controller.changed.connect(changes.append)
    _choose(monkeypatch, library_view.REMOVE_FROM_INDEX)
    assert window.library.select_path(str(docs / "notes.txt"))
    window.library.remove_button.click()
    qtbot.waitUntil(lambda: _names(window) == {"faq.md"}, timeout=20000)
    assert [(c.indexed, c.removed) for c in changes] == [((), (str(docs / "notes.txt"),))]

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "faq.md").write_text("# Kettles\n\nDescale every month.\n", encoding="utf-8")
    window.add_documents([outside / "faq.md"])
    qtbot.waitUntil(lambda: "faq (2).md" in _names(window), timeout=60000)
    assert [c.indexed for c in changes[1:]] == [(docs / "faq (2).md",)]


def test_open_says_when_no_program_can_open_the_file(qtbot, start, docs, monkeypatch) -> None:
    window = start()
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda _url: False)
    assert window.open_document(docs / "faq.md") is False
    assert window.notice.isVisibleTo(window) and "No program" in window.notice.text()


def _doc(name: str, status: DocumentStatus, chunks: int, error: str = "") -> DocumentInfo:
    return DocumentInfo(
        path=f"/docs/{name}",
        source="/docs",
        rel_path=name,
        sha256="",
        size=1,
        mtime=0.0,
        kind=name.rsplit(".", 1)[-1],
        status=status,
        error=error,
        chunk_count=chunks,
        indexed_at=0.0,
    )


def test_columns_sort_the_filter_narrows_and_totals_count_each_status(qtbot) -> None:
    view = LibraryView()
    qtbot.addWidget(view)
    view.set_documents(
        [
            _doc("b.md", DocumentStatus.INDEXED, 3),
            _doc("a.pdf", DocumentStatus.INDEXED, 12),
            _doc("c.docx", DocumentStatus.ERROR, 0, "password-protected"),
            _doc("d.txt", DocumentStatus.PENDING, 0),
        ]
    )
    assert view.totals.text() == ("4 documents · 2 indexed · 1 pending · 1 with errors · 15 chunks")

    def column(col: int) -> list[object]:
        return [view.proxy.index(r, col).data() for r in range(view.proxy.rowCount())]

    assert column(0) == ["a.pdf", "b.md", "c.docx", "d.txt"]
    view.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # chunks, as numbers
    assert column(3) == [12, 3, 0, 0]
    view.filter_box.setText("PASSWORD")  # the error text counts too
    assert column(0) == ["c.docx"]
    view.filter_box.setText("nothing like this")
    assert view.proxy.rowCount() == 0 and "No document matches" in view.empty.text()
    view.filter_box.clear()
    assert view.proxy.rowCount() == 4 and view.empty.isHidden()


def test_an_indexing_notice_goes_once_its_cause_is_fixed(qtbot, start, docs) -> None:
    window = start()
    broken = docs / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really a PDF")
    window.index_folders()
    qtbot.waitUntil(lambda: "could not be indexed" in window.notice.text(), timeout=60000)
    assert "broken.pdf" in window.notice.text() and window.notice_close.isVisibleTo(window)
    broken.unlink()  # the cause, fixed
    window.index_folders()
    qtbot.waitUntil(lambda: not window.is_indexing(), timeout=60000)
    qtbot.waitUntil(lambda: window.notice.text() == "", timeout=20000)
    assert not window.notice.isVisibleTo(window)

    window.show_notice("Something else went wrong")  # no known cause: the user dismisses it
    window.index_folders()
    qtbot.waitUntil(lambda: not window.is_indexing(), timeout=60000)
    assert window.notice.text() == "Something else went wrong"
    window.notice_close.click()
    assert not window.notice.isVisibleTo(window)
