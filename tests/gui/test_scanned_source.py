"""A citation on a scanned page (image-only PDF, or a picture) opens the page image with the
cited OCR lines highlighted, like a text PDF's span; OCR by the real models, files built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from almanac.core.documents import read_document
from almanac.core.records import Citation
from almanac.ui.source_viewer import SourceViewer
from ocrgen import image_pdf, png_bytes, render_lines

LINES = ["Warranty terms for the TR-7", "Returns are accepted within 60 days.", "Keep the box."]


@pytest.fixture(autouse=True)
def private_ocr_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def viewer(qtbot):
    v = SourceViewer()
    qtbot.addWidget(v)
    v.resize(900, 700)
    return v


def cite(path: Path, word: str) -> Citation:
    """A citation of the line holding ``word``, as the index would give it (read = indexed)."""
    document = read_document(path)
    (section,) = document.sections
    text = document.page_text(section.page)
    line = next(line for line in text.split("\n") if word in line)
    start = text.index(line)
    return Citation(1, str(path), section.page, start, start + len(line), "", 1.0, line)


@pytest.mark.parametrize("name", ["scan.pdf", "scan.png"])
def test_scanned_citation_highlights_the_cited_line(tmp_path: Path, viewer, name: str):
    image = render_lines(LINES, width=1275, height=1650)  # Letter page at 150 dpi
    path = tmp_path / name
    path.write_bytes(image_pdf([image], dpi=150) if name.endswith(".pdf") else png_bytes(image))
    citation = cite(path, "Returns")
    viewer.show_citation(citation, [tmp_path])
    assert viewer.mode == "pdf" and viewer.current_page == 1
    (rect,) = viewer.highlight_rects
    height = viewer.page_label.pixmap().height()
    # The second of three lines, drawn at 60 + 1 * 64.8 px of a 1650 px page.
    assert 0.04 < rect.top() / height < 0.08 < 0.10 < rect.bottom() / height < 0.14
    assert "Returns are accepted" in viewer.highlighted_text()


def test_scanned_page_not_in_the_ocr_cache_shows_without_highlight(
    tmp_path: Path, viewer, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_pdf([render_lines(LINES, width=1275, height=1650)], dpi=150))
    citation = cite(path, "Keep")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    viewer.show_citation(citation, [tmp_path])
    assert viewer.mode == "pdf" and viewer.highlight_rects == []
