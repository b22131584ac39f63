"""OCR of images and scanned PDF pages with the real RapidOCR models (kept few and small)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

from almanac.core.documents import (
    CorruptDocumentError,
    ExpansionLimitError,
    image_reader,
    ocr,
    ocr_pending,
    read_document,
)
from almanac.core.documents.pdf import ocr_page_of_file
from ocrgen import cer, image_pdf, merge_pdfs, png_bytes, render_lines

from pdfgen import build_pdf

LINES = ["Reset the TR-7 router by holding", "the WPS button for 30 seconds."]


@pytest.fixture(autouse=True)
def private_ocr_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_image_is_read_by_ocr_with_line_boxes(tmp_path: Path, private_ocr_cache: Path):
    path = tmp_path / "dialog.png"
    path.write_bytes(png_bytes(render_lines(LINES)))
    doc = read_document(path)
    assert doc.kind == "image" and doc.paged
    text = doc.pages[0]
    assert text.count("\n") == 1 and cer(text, "\n".join(LINES)) < 0.05
    assert "router" in text and "seconds" in text
    (section,) = doc.sections
    assert section.page == 1 and section.heading_path == (ocr.OCR_HEADING,)
    # The second line's span maps to the second line's box, in the lower part of the image.
    start = text.index("seconds")
    assert any(private_ocr_cache.rglob("*.json"))
    _, page = image_reader.ocr_page_of_file(path.read_bytes(), 1, cached_only=True)
    assert page is not None and page.text == text  # from the cache the read filled
    (box,) = page.boxes_for(start, start + 7)
    assert 0.4 < box.top < box.bottom < 0.8 and box.left < 0.1 < 0.25 < box.right
    (first,) = page.boxes_for(0, 5)
    assert first.bottom <= box.top


def test_mixed_pdf_reads_only_scanned_pages_by_ocr(tmp_path: Path):
    text_page = build_pdf([["This page has a real text layer about warranty terms."]])
    scanned = image_pdf([render_lines(LINES, width=1275, height=600)], dpi=150)
    path = tmp_path / "mixed.pdf"
    path.write_bytes(merge_pdfs([text_page, scanned]))
    assert ocr_pending(path, path.read_bytes())
    doc = read_document(path)
    assert "warranty terms" in doc.pages[0]
    assert cer(doc.pages[1], "\n".join(LINES)) < 0.05
    by_page = {s.page: s for s in doc.sections}
    assert ocr.OCR_HEADING not in by_page[1].heading_path
    assert by_page[2].heading_path[-1] == ocr.OCR_HEADING
    assert any("read by OCR: 2" in w for w in doc.warnings)
    # The viewer's way back to the boxes of a cited scanned page, and none for a text page.
    data = path.read_bytes()
    assert not ocr_pending(path, data)  # every scanned page is in the cache now
    assert ocr_page_of_file(data, 1) is None
    found = ocr_page_of_file(data, 2)
    assert found is not None and found.text == doc.pages[1]


def test_image_without_text_is_a_specific_error(tmp_path: Path):
    path = tmp_path / "blank.jpg"
    Image.new("RGB", (400, 300), (250, 250, 250)).save(path)
    with pytest.raises(ocr.NoTextInImageError, match="no text found in this image"):
        read_document(path)
    damaged = tmp_path / "cut.png"
    damaged.write_bytes(png_bytes(render_lines(LINES))[:300])
    with pytest.raises(CorruptDocumentError, match="image"):
        read_document(damaged)


def test_ocr_reports_progress_and_stops_when_cancelled(tmp_path: Path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_pdf([render_lines(["page one"], width=600, height=300)] * 3, dpi=100))
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 1:
            cancel.set()

    with ocr.ocr_context(cancel, progress), pytest.raises(ocr.OcrCancelled):
        read_document(path)
    assert seen == [(0, 3), (1, 3)]  # stopped before the second page's OCR


def test_page_scanned_sideways_is_read_and_boxes_map_back(tmp_path: Path):
    path = tmp_path / "sideways.png"
    upright = render_lines(LINES)
    path.write_bytes(png_bytes(upright.rotate(90, expand=True)))  # text runs bottom to top
    doc = read_document(path)
    text = doc.pages[0]
    assert cer(text, "\n".join(LINES)) < 0.05
    _, page = image_reader.ocr_page_of_file(path.read_bytes(), 1, cached_only=True)
    assert page is not None
    (first,) = page.boxes_for(0, 5)
    (second,) = page.boxes_for(text.index("seconds"), text.index("seconds") + 7)
    # Turned counter-clockwise, the first line is the left column, read from the bottom up.
    assert first.right <= second.left and first.bottom > 0.6 and first.right - first.left < 0.3


def test_cancel_stops_inside_a_page_and_caches_nothing(private_ocr_cache: Path):
    cancel = threading.Event()
    cancel.set()
    with ocr.ocr_context(cancel), pytest.raises(ocr.OcrCancelled):
        ocr.recognize(render_lines(LINES), "key-of-a-cancelled-page")
    assert ocr.load_cached("key-of-a-cancelled-page") is None


def test_image_bomb_refused_from_its_header(tmp_path: Path):
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    # A 40 000 x 40 000 PNG header: 1.6 gigapixels once decoded, a few bytes on disk.
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ExpansionLimitError, match="image refused"):
        read_document(path)
