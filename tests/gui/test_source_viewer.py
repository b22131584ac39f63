"""The source viewer: the cited PDF page with the span highlighted, text spans highlighted exactly,
and nothing outside the knowledge-base folders is ever shown or opened."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QRectF, QUrl
from PySide6.QtGui import QDesktopServices

from almanac.core.documents import read_document
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.records import Citation, Hit, SearchFilters
from almanac.core.retrieval.retrieval import Searcher
from almanac.core.store.store import Store
from almanac.ui.source_viewer import SourceViewer, is_inside


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, embedder, sample_kb):
    """The sample KB copied and ingested once for this module (ingesting costs seconds)."""
    root = tmp_path_factory.mktemp("viewer")
    docs = root / "docs"
    shutil.copytree(sample_kb, docs)
    store = Store(root / "kb", dim=embedder.dim, embedder_name=embedder.name)
    Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig())).ingest([docs])
    searcher = Searcher(store, embedder)
    yield docs, searcher
    searcher.close()


@pytest.fixture
def viewer(qtbot):
    v = SourceViewer()
    qtbot.addWidget(v)
    v.resize(900, 700)
    return v


@pytest.fixture
def opened(monkeypatch) -> list[QUrl]:
    """Replaces QDesktopServices.openUrl: tests must never launch a real application."""
    calls: list[QUrl] = []

    def fake_open(url: QUrl) -> bool:
        calls.append(url)
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", fake_open)
    return calls


def _citation(hit: Hit, number: int = 1) -> Citation:
    return Citation(
        number, hit.path, hit.page, hit.start, hit.end, hit.heading, hit.score, hit.text
    )


def _pdf_citation(searcher: Searcher) -> Citation:
    hits = searcher.search("Which network ports does LAN sync use?", 5).hits
    hit = next(h for h in hits if h.path.endswith(".pdf") and "47310" in h.text)
    assert hit.page == 8
    return _citation(hit)


def test_pdf_citation_shows_the_page_with_the_span_highlighted(viewer, sample_index) -> None:
    docs, searcher = sample_index
    citation = _pdf_citation(searcher)
    viewer.show_citation(citation, [docs])
    assert viewer.mode == "pdf" and viewer.current_page == 8
    assert viewer.title.text() == "northwind-sync-user-manual.pdf, page 8"
    pixmap = viewer.page_label.pixmap()
    assert not pixmap.isNull() and pixmap.width() > 500 and pixmap.height() > 700
    bounds = QRectF(0, 0, pixmap.width(), pixmap.height())
    assert viewer.highlight_rects
    for rect in viewer.highlight_rects:
        assert not rect.isEmpty() and bounds.contains(rect)
    # The text pdfium finds under the rectangles is the cited passage, port number included.
    under = " ".join(viewer.highlighted_text().split())
    assert "47310" in under
    assert " ".join(citation.text.split())[:40] in under


def test_highlight_is_painted_on_the_page(viewer, sample_index) -> None:
    docs, searcher = sample_index
    viewer.show_citation(_pdf_citation(searcher), [docs])
    image = viewer.page_label.pixmap().toImage()
    rect = viewer.highlight_rects[0]
    # Sample a column of pixels across the rect: paper white becomes the highlight tint.
    x = int(rect.left()) + 2
    tinted = [image.pixelColor(x, y) for y in range(int(rect.top()) + 2, int(rect.bottom()) - 2)]
    assert any(c.blue() < 200 and c.red() > 200 for c in tinted)


def test_markdown_citation_highlights_exactly_the_span(viewer, sample_index) -> None:
    docs, searcher = sample_index
    hits = searcher.search("error code", 5, SearchFilters(kinds=("md",))).hits
    citation = _citation(hits[0])
    viewer.show_citation(citation, [docs])
    assert viewer.mode == "text" and viewer.current_page is None
    text = read_document(Path(citation.path)).page_text(None)
    assert viewer.highlighted_text() == text[citation.start : citation.end]
    assert viewer.text_view.toPlainText() == text
    assert viewer.text_view.isReadOnly()


def test_offsets_count_characters_not_utf16_units(viewer, tmp_path) -> None:
    doc = tmp_path / "emoji.md"
    doc.write_text("# Tips \U0001f680\n\nRockets \U0001f680\U0001f680. Then the cited part.\n")
    text = read_document(doc).page_text(None)
    start = text.index("Then")
    citation = Citation(1, str(doc), None, start, len(text.rstrip()), "Tips", 1.0, "")
    viewer.show_citation(citation, [tmp_path])
    assert viewer.highlighted_text() == "Then the cited part."


def test_document_html_is_shown_as_text(viewer, tmp_path) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("Before <b>bold</b> <img src=x onerror=alert(1)> after.\n")
    viewer.show_citation(Citation(1, str(doc), None, 0, 6, "", 1.0, ""), [tmp_path])
    assert "<b>bold</b>" in viewer.text_view.toPlainText()


def test_paths_outside_the_roots_are_refused(viewer, tmp_path, opened) -> None:
    root = tmp_path / "kb-docs"
    root.mkdir()
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nnot yours\n")
    link = root / "innocent.md"
    link.symlink_to(outside)
    for path in (str(root / ".." / "secret.md"), str(outside), str(link), "/etc/passwd"):
        viewer.show_citation(Citation(1, path, None, 0, 5, "", 1.0, ""), [root])
        assert viewer.mode == "refused", path
        assert "outside your knowledge-base folders" in viewer.message.text()
        assert viewer.text_view.toPlainText() == "" and viewer.page_label.pixmap().isNull()
        assert not viewer.open_button.isEnabled()
        assert viewer.open_external() is False
    assert opened == [] and viewer.last_opened_url is None


def test_is_inside_resolves_dot_dot_and_prefix_tricks(tmp_path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (tmp_path / "docs-evil").mkdir()
    assert is_inside(root / "a" / ".." / "b.md", [root]) == (root / "b.md").resolve()
    assert is_inside(tmp_path / "docs-evil" / "x.md", [root]) is None  # not a string prefix test
    assert is_inside(root / ".." / "x.md", [root]) is None


def test_open_external_opens_allowed_files_only(viewer, sample_index, opened) -> None:
    docs, searcher = sample_index
    citation = _pdf_citation(searcher)
    viewer.show_citation(citation, [docs])
    assert viewer.open_button.isEnabled()
    assert viewer.open_external() is True
    expected = QUrl.fromLocalFile(os.path.realpath(citation.path))
    assert opened == [expected] and viewer.last_opened_url == expected


def test_missing_file_and_bad_page_are_errors_not_crashes(viewer, sample_index, tmp_path) -> None:
    docs, searcher = sample_index
    gone = Citation(1, str(tmp_path / "gone.md"), None, 0, 1, "", 1.0, "")
    viewer.show_citation(gone, [tmp_path])
    assert viewer.mode == "error" and viewer.open_external() is False
    pdf = _pdf_citation(searcher)
    bad = Citation(1, pdf.path, 99, 0, 10, "", 1.0, "")
    viewer.show_citation(bad, [docs])
    assert viewer.mode == "error" and "page 99" in viewer.message.text()
