"""Cited passages on scanned pages: the page image with the OCR lines that hold the span tinted,
the same way the source viewer tints a text PDF's characters.

Box positions come from the OCR cache the index filled when it read the file (page fractions,
like the viewer's PDF regions). Nothing is recognised here: the models take seconds a page, and
this runs on the GUI thread; a page missing from the cache is shown without a highlight.
"""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage

from almanac.core.documents import DocumentError, image_reader, kind_of
from almanac.core.documents.ocr import OcrPage
from almanac.core.documents.pdf import PDFIUM_LOCK, ocr_page_of_file

__all__ = ["is_image", "locate_image", "ocr_regions", "render_image"]


def is_image(path: Path) -> bool:
    return kind_of(path) == "image"


def ocr_regions(
    path: Path, page: int, start: int, end: int, wait_s: float
) -> tuple[list[QRectF], str] | None:
    """Regions (page fractions) and text of the OCR lines under ``[start, end)`` when the PDF
    page is a scan (none when it is not in the OCR cache); None for a page with a text layer."""
    if not PDFIUM_LOCK.acquire(timeout=wait_s):
        return None
    try:
        found = ocr_page_of_file(path.read_bytes(), page, cached_only=True)
    except (OSError, pdfium.PdfiumError, ValueError):
        return None
    finally:
        PDFIUM_LOCK.release()
    return None if found is None else _regions(found, start, end)


def locate_image(
    path: Path, page: int, start: int, end: int
) -> tuple[int, tuple[float, float], list[QRectF], str]:
    """Like the viewer's PDF ``_locate`` for an image: frame count, the frame's size in pixels,
    the cited lines' regions in fractions, their text."""
    try:
        data = path.read_bytes()
        count = image_reader.frame_count_of_file(data)
        frame, found = image_reader.ocr_page_of_file(data, page, cached_only=True)
    except DocumentError as exc:
        raise ValueError(str(exc)) from exc
    regions, text = _regions(found, start, end)
    return count, (float(frame.width), float(frame.height)), regions, text


def render_image(path: Path, page: int, scale: float) -> QImage:
    """Frame ``page`` at ``scale`` times its pixel size, as the viewer renders a PDF page."""
    try:
        frame, _ = image_reader.ocr_page_of_file(path.read_bytes(), page, cached_only=True)
    except DocumentError as exc:
        raise ValueError(str(exc)) from exc
    width = max(1, round(frame.width * scale))
    height = max(1, round(frame.height * scale))
    rgba = frame.resize((width, height)).convert("RGBA")
    data = rgba.tobytes()
    return QImage(data, width, height, width * 4, QImage.Format.Format_RGBA8888).copy()


def _regions(found: OcrPage | None, start: int, end: int) -> tuple[list[QRectF], str]:
    if found is None or end <= start:
        return [], ""
    boxes = found.boxes_for(start, end)
    regions = [QRectF(b.left, b.top, b.right - b.left, b.bottom - b.top) for b in boxes]
    return regions, "\n".join(found.text[b.start : b.end] for b in boxes)
