"""The source pane in the real main window: it never makes the window grow, fits PDF pages to its
width (zoom, page navigation), closes with its button or Ctrl+W, shows only the current chat's
source; and the window around it: Ctrl+N disables Rename/Delete, a theme switch re-renders the
chat's links, export carries sources and warnings, the layout is restored at the next start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from almanac.app.history import HistoryStore
from almanac.app.services import Services
from almanac.app.settings import Settings, SettingsStore
from almanac.core.documents import read_document
from almanac.core.records import Answer, AnswerMode, Citation
from almanac.ui.chat_view import Entry
from almanac.ui.main_window import MainWindow
from almanac.ui.theme import apply_theme
from almanac.ui.workers import ModelWorker, TaskRunner

PDF_NAME = "northwind-sync-user-manual.pdf"
LONG_STEM = "Northwind Sync - " + "very long support article title " * 6  # ~210 characters


@pytest.fixture
def docs(tmp_path, sample_kb) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(sample_kb / "manual" / PDF_NAME, folder / PDF_NAME)
    shutil.copy(sample_kb / "manual" / PDF_NAME, folder / f"{LONG_STEM[:200]}.pdf")
    shutil.copy(sample_kb / "faq.md", folder / f"{LONG_STEM[:200]}.md")
    return folder


@pytest.fixture
def make_window(qtbot, tmp_path, make_kb, embedder, docs):
    """The real window over an empty index: the pane reads the files the citations name."""
    kb = make_kb()
    services = Services(
        store=kb.store, embedder=embedder, ingestor=kb.ingestor, searcher=kb.searcher
    )
    settings_path = tmp_path / "settings.json"
    SettingsStore(settings_path).save(Settings(documents_folders=(str(docs),)))
    windows: list[MainWindow] = []

    def factory() -> MainWindow:
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
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield factory
    for window in windows:
        window.close()
    apply_theme("system")


def _pdf_citation(path: Path, number: int = 1) -> Citation:
    text = read_document(path).page_text(8)
    start = text.index("47310")
    return Citation(number, str(path), 8, start, start + 40, "Ports", 0.9, text[start : start + 40])


def _activate(qtbot, window: MainWindow) -> None:
    # Shortcuts only reach the active window.
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)


def _settle(qtbot) -> None:
    qtbot.wait(50)  # layout requests are posted events
    QApplication.processEvents()


def test_window_width_never_changes_when_a_source_with_a_200_character_title_opens(
    qtbot, make_window, docs
) -> None:
    window = make_window()
    window.resize(1280, 800)
    _settle(qtbot)
    width = window.width()
    long_pdf = docs / f"{LONG_STEM[:200]}.pdf"
    long_md = docs / f"{LONG_STEM[:200]}.md"
    for citation in (
        _pdf_citation(long_pdf),
        Citation(2, str(long_md), None, 0, 40, "A heading " * 20, 0.9, "text"),
    ):
        window.show_citation(citation)
        _settle(qtbot)
        assert window.viewer.isVisible() and window.viewer.mode in ("pdf", "text")
        assert window.width() == width
        # Every control of the pane is inside the window, the close button included.
        right = window.viewer.close_button.mapTo(
            window, window.viewer.close_button.rect().topRight()
        )
        assert 0 < right.x() < window.width()
        open_right = window.viewer.open_button.mapTo(
            window, window.viewer.open_button.rect().topRight()
        )
        assert 0 < open_right.x() < window.width()
        # The title is elided on screen; the full name stays in the tooltip.
        assert window.viewer.title.width() < len(window.viewer.title.text()) * 4
        assert Path(citation.path).name in window.viewer.title.toolTip()


def test_a_narrow_window_does_not_grow_either(qtbot, make_window, docs) -> None:
    window = make_window()
    window.resize(window.minimumSizeHint().width(), 560)
    _settle(qtbot)
    width = window.width()
    window.show_citation(_pdf_citation(docs / f"{LONG_STEM[:200]}.pdf"))
    _settle(qtbot)
    assert window.viewer.isVisible() and window.width() == width
    window.close_source()
    _settle(qtbot)
    assert window.splitter.widget(0).isVisible()  # the list is back
    assert window.width() == width


def test_pdf_page_fits_the_pane_zooms_and_pages(qtbot, make_window, docs) -> None:
    window = make_window()
    window.resize(1280, 800)
    window.show_citation(_pdf_citation(docs / PDF_NAME))
    _settle(qtbot)
    viewer = window.viewer
    assert viewer.mode == "pdf" and viewer.current_page == 8 and viewer.highlight_rects

    def page_width() -> float:
        pixmap = viewer.page_label.pixmap()
        return pixmap.width() / pixmap.devicePixelRatio()

    def viewport() -> int:
        return viewer.scroll_area.viewport().width()

    assert viewport() * 0.85 <= page_width() <= viewport()
    assert viewer.scroll_area.horizontalScrollBar().maximum() == 0  # no side cut off

    window.resize(1000, 800)  # a narrower pane re-fits the page
    _settle(qtbot)
    assert viewport() * 0.85 <= page_width() <= viewport()

    fitted = page_width()
    viewer.zoom_in_button.click()
    assert page_width() > fitted * 1.2 and viewer.zoom > 1
    viewer.fit_button.click()
    assert abs(page_width() - fitted) <= 2

    viewer.next_button.click()
    assert viewer.current_page == 9 and viewer.highlight_rects == []
    assert viewer.page_info.text() == f"9 / {viewer.page_count()}"
    viewer.prev_button.click()
    assert viewer.current_page == 8 and viewer.highlight_rects  # the cited span again


def test_close_button_shortcut_and_only_the_current_chats_source(qtbot, make_window, docs) -> None:
    window = make_window()
    window.show_citation(_pdf_citation(docs / PDF_NAME))
    assert window.viewer.isVisible()
    window.viewer.close_button.click()
    assert not window.viewer.isVisible() and window.viewer.mode == "empty"

    window.show_citation(_pdf_citation(docs / PDF_NAME))
    _activate(qtbot, window)
    qtbot.keyClick(window.transcript, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)
    assert not window.viewer.isVisible()

    first = window.history.create().id
    second = window.history.create().id
    window.refresh_conversations()
    window.open_conversation(first)
    window.show_citation(_pdf_citation(docs / PDF_NAME))
    window.open_conversation(second)
    assert not window.viewer.isVisible() and window.viewer.current_path is None
    window.show_citation(_pdf_citation(docs / PDF_NAME))
    window.new_chat()
    assert not window.viewer.isVisible()


def test_after_ctrl_n_rename_and_delete_are_disabled(qtbot, make_window) -> None:
    window = make_window()
    cid = window.history.create().id
    window.history.rename(cid, "Old chat")
    window.refresh_conversations()
    window.conversation_list.setCurrentRow(0)
    assert window.conversation_id == cid
    assert window.rename_button.isEnabled() and window.delete_button.isEnabled()
    _activate(qtbot, window)
    qtbot.keyClick(window.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.conversation_id is None
    assert not window.rename_button.isEnabled() and not window.delete_button.isEnabled()
    window.delete_button.click()  # does nothing: the old chat survives
    assert [c.id for c in window.history.list("")] == [cid]


def _answer(path: Path) -> Answer:
    cited = Citation(
        1, str(path), None, 0, 30, "Passwords", 0.8, "The reset link lasts 30 minutes."
    )
    return Answer(
        question="How long does the reset link last?",
        text="The reset link lasts 30 minutes [1]. It also resets your cat.",
        mode=AnswerMode.MODEL,
        citations=(cited,),
        also_retrieved=(),
        grounded=False,
        unsupported_sentences=("It also resets your cat.",),
    )


def test_theme_switch_re_renders_links(qtbot, make_window, docs) -> None:
    window = make_window()
    answer = _answer(docs / f"{LONG_STEM[:200]}.md")
    apply_theme("light")
    window.transcript.set_entries(
        [Entry("user", answer.question), Entry("assistant", answer.text, answer)]
    )
    light_link = window.transcript.palette().color(QPalette.ColorRole.Link).name()
    assert light_link in window.transcript.toHtml()
    apply_theme("dark")
    QApplication.processEvents()
    dark_link = window.transcript.palette().color(QPalette.ColorRole.Link)
    assert dark_link == QColor(110, 170, 255)
    html = window.transcript.toHtml()
    assert dark_link.name() in html and light_link not in html


def test_export_contains_sources_warnings_and_a_clean_name(
    qtbot, make_window, docs, tmp_path
) -> None:
    window = make_window()
    answer = _answer(docs / "faq.md")
    cid = window.history.create().id
    window.history.add_message(cid, "user", answer.question)
    window.history.add_message(cid, "assistant", answer.text, answer=answer)
    window.history.rename(cid, "How do I reset my code?")
    window.open_conversation(cid)
    out = window.export_conversation(tmp_path / "chat.md")
    assert out is not None
    text = out.read_text(encoding="utf-8")
    assert "[1] faq.md" in text and "Passwords" in text and "lasts 30 minutes" in text
    assert "Warning: not supported by the cited passages" in text and "resets your cat" in text


def test_layout_is_restored_at_the_next_start(qtbot, make_window, docs) -> None:
    window = make_window()
    window.resize(780, 560)  # the offscreen screen is 800x600
    window.show_citation(_pdf_citation(docs / PDF_NAME))
    _settle(qtbot)
    window.close_source()
    _settle(qtbot)
    pane = window._viewer_width
    sizes = window.splitter.sizes()
    window.splitter.setSizes([sizes[0] + 60, sizes[1] - 60, sizes[2]])
    _settle(qtbot)
    sidebar = window.splitter.sizes()[0]
    assert sidebar == sizes[0] + 60
    size = window.size()
    window.close()
    again = make_window()
    _settle(qtbot)
    assert again.size() == size and size.height() == 560
    assert not again.viewer.isVisible()  # a source opens with a click, not by itself
    assert again.splitter.sizes()[0] == sidebar
    assert pane > 0 and again._viewer_width == pane


def test_keyboard_walks_chats_and_panes(qtbot, make_window, docs) -> None:
    window = make_window()
    first = window.history.create().id
    window.history.rename(first, "First")
    second = window.history.create().id
    window.history.rename(second, "Second")
    window.refresh_conversations()
    _activate(qtbot, window)
    window.input.setFocus()
    listed = [
        window.conversation_list.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(window.conversation_list.count())
    ]
    qtbot.keyClick(window.input, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert window.conversation_id == listed[0]
    qtbot.keyClick(window.input, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert window.conversation_id == listed[1]
    qtbot.keyClick(window.input, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert window.conversation_id == listed[0]

    window.show_citation(_pdf_citation(docs / PDF_NAME))
    window.conversation_list.setFocus()
    order = []
    for _ in range(4):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_F6)
        focused = QApplication.focusWidget()
        order.append("viewer" if window.viewer.isAncestorOf(focused) else focused.accessibleName())
    assert order == ["Conversation", "Question", "viewer", "Conversations"]
