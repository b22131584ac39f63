"""The status bar's OCR line over a real ingestor's slow lane and real OCR of a rendered scan."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from almanac.core.indexing.ingest import posix
from almanac.core.indexing.ocr_lane import OcrProgress
from almanac.core.records import DocumentStatus
from almanac.ui.ocr_status import OcrStatus, describe_ocr
from ocrgen import image_pdf, render_lines


@pytest.fixture(autouse=True)
def private_ocr_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _scan(folder: Path, pages: int) -> Path:
    images = [
        render_lines([f"Scanned page {n} of the kiln manual.", f"Code K{n}55 means cool down."])
        for n in range(1, pages + 1)
    ]
    path = folder / "kiln-scan.pdf"
    path.write_bytes(image_pdf(images, dpi=100))
    return path


def _in_a_window(qtbot, kb) -> tuple[QWidget, OcrStatus]:
    """As in the status bar: shown with its window, hidden by itself while there is nothing."""
    window = QWidget()
    qtbot.addWidget(window)
    status = OcrStatus(kb.ingestor.ocr_lane, window)
    window.show()
    return window, status


def test_the_text_says_which_scan_which_page_and_how_many_wait() -> None:
    assert describe_ocr(OcrProgress("", 0, 0, 0)) == ""
    assert describe_ocr(OcrProgress("", 0, 0, 2)) == "2 scan(s) waiting for OCR"
    shown = describe_ocr(OcrProgress("/docs/kiln-scan.pdf", 1, 3, 2))
    assert shown == "Reading scan kiln-scan.pdf by OCR: page 2 of 3 \u00b7 2 more waiting"
    assert describe_ocr(OcrProgress("/docs/a.png", 3, 3, 0)).endswith("page 3 of 3")


def test_progress_shows_while_a_scan_is_read_and_the_end_is_announced(
    qtbot, kb, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    scan = _scan(docs, 2)
    _window, status = _in_a_window(qtbot, kb)
    assert not status.isVisible()  # idle: nothing to say
    seen: list[str] = []
    status.progressed.connect(lambda _p: seen.append(status.label.text()))
    with qtbot.waitSignal(status.file_done, timeout=180_000) as done:
        kb.ingestor.ingest([docs], wait_for_ocr=False)  # deferred to the lane
    assert done.args == [str(scan)]
    assert any(t.startswith("Reading scan kiln-scan.pdf by OCR") for t in seen), seen
    assert any(": page 2 of 2" in t for t in seen), seen
    qtbot.waitUntil(lambda: not status.isVisible(), timeout=10_000)
    assert kb.store.documents()[posix(scan)].status is DocumentStatus.INDEXED
    status.detach()
    assert kb.ingestor.ocr_lane.on_progress is None


def test_cancel_stops_the_scan_and_leaves_it_waiting(qtbot, kb, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    scan = _scan(docs, 3)
    _window, status = _in_a_window(qtbot, kb)
    kb.ingestor.ingest([docs], wait_for_ocr=False)
    qtbot.waitUntil(lambda: status.isVisible(), timeout=60_000)
    with qtbot.waitSignal(status.file_done, timeout=180_000):
        qtbot.mouseClick(status.cancel_button, qtbot_button())
    assert kb.ingestor.ocr_lane.wait_idle()
    qtbot.waitUntil(lambda: not status.isVisible(), timeout=10_000)
    assert status.cancel_button.isEnabled()  # ready for the next scan
    assert kb.store.documents()[posix(scan)].status is DocumentStatus.PENDING


def qtbot_button():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
