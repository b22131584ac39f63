"""Shows the passage a citation points at: the PDF page with the span highlighted, or the text of
other formats scrolled to the highlighted span.

Citations come from the index, but the files they name are read from disk when clicked, so the
viewer only opens files inside the user's knowledge-base folders (symlinks and ``..`` resolved):
a tampered index or a symlink must not turn a click into reading or launching an arbitrary file.

Rendering one page runs on the GUI thread on purpose: pdfium renders a normal page at this scale
in ~5 ms and the whole ``show_citation`` (open, render, locate the span, paint) takes ~40 ms for the
sample manual, well under the ~100 ms a click may take before it feels slow; a worker round trip
would add more complexity than it saves. The one thing that could stall it is ingestion holding
``PDFIUM_LOCK`` while it reads a large PDF, so the lock is taken with a timeout and the viewer says
"busy" instead of freezing the window.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PySide6.QtCore import QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QImage,
    QPainter,
    QPixmap,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from almanac.core.documents import DocumentError, read_document
from almanac.core.documents.pdf import PDFIUM_LOCK, char_range
from almanac.core.records import Citation

__all__ = ["SourceViewer", "ViewerMode", "is_inside"]

log = logging.getLogger(__name__)

ViewerMode = Literal["empty", "pdf", "text", "refused", "error"]

# 1.5 x 72 dpi = 108 dpi: body text of an A4/Letter page is comfortably readable at 100% zoom.
PDF_SCALE = 1.5
# How long a click may wait for an ingest worker to release pdfium before we give up.
PDFIUM_WAIT_S = 2.0
HIGHLIGHT_FILL = QColor(255, 200, 0, 90)
HIGHLIGHT_PAD = 1.5  # pixels around each text rect, so glyph edges aren't clipped


def is_inside(path: Path, roots: Sequence[Path]) -> Path | None:
    """The resolved ``path`` when it lies inside one of ``roots`` (both resolved), else None."""
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    for root in roots:
        try:
            base = root.resolve(strict=False)
        except (OSError, RuntimeError):
            continue
        if resolved == base or resolved.is_relative_to(base):
            return resolved
    return None


class SourceViewer(QWidget):
    """A panel (or dialog body) showing one citation's passage."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode: ViewerMode = "empty"
        self.highlight_rects: list[QRectF] = []
        self.current_page: int | None = None
        self.current_path: Path | None = None
        self.last_opened_url: QUrl | None = None
        self._roots: tuple[Path, ...] = ()
        self._pdf_text = ""
        self._selection: tuple[int, int] | None = None  # UTF-16 positions in the text view

        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # file names are not markup
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open in default app")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_external)

        self.message = QLabel()
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self.page_label = QLabel()
        self.page_label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(self.page_label)
        self.scroll_area.setWidgetResizable(False)
        self.scroll_area.setAlignment(Qt.AlignmentFlag.AlignHCenter)

        self.text_view = QTextEdit()
        self.text_view.setReadOnly(True)
        self.text_view.setAcceptRichText(False)
        self.text_view.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)

        self.stack = QStackedWidget()
        for page in (self.message, self.scroll_area, self.text_view):
            self.stack.addWidget(page)

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)

    # -- public API ---------------------------------------------------------------------------

    def show_citation(self, citation: Citation, allowed_roots: Sequence[Path]) -> None:
        self._reset()
        self._roots = tuple(Path(r) for r in allowed_roots)
        path = is_inside(Path(citation.path), self._roots)
        if path is None:
            self.mode = "refused"
            self.title.setText(Path(citation.path).name)
            self._show_message(
                "This source is outside your knowledge-base folders, so it was not opened:\n"
                f"{citation.path}"
            )
            return
        if not path.is_file():
            self._error(path, "This file no longer exists or is not a regular file.")
            return
        self.current_path = path
        self.open_button.setEnabled(True)
        if citation.page is not None and path.suffix.lower() == ".pdf":
            self._show_pdf(path, citation)
        else:
            self._show_text(path, citation)

    def open_external(self) -> bool:
        """Open the current file with the system's default app; only files inside the roots."""
        path = self.current_path
        if path is None or self.mode not in ("pdf", "text"):
            return False
        checked = is_inside(path, self._roots)  # re-checked: the file may have been swapped
        if checked is None or not checked.is_file():
            return False
        url = QUrl.fromLocalFile(str(checked))
        self.last_opened_url = url
        return bool(QDesktopServices.openUrl(url))

    def highlighted_text(self) -> str:
        """Text mode: the highlighted span. PDF mode: the page text under the highlight rects."""
        if self.mode == "pdf":
            return self._pdf_text
        if self.mode != "text" or self._selection is None:
            return ""
        cursor = QTextCursor(self.text_view.document())
        cursor.setPosition(self._selection[0])
        cursor.setPosition(self._selection[1], QTextCursor.MoveMode.KeepAnchor)
        # Qt marks line breaks in a selection with U+2029; give back the text as it was set.
        return cursor.selectedText().replace("\u2029", "\n")

    # -- PDF ----------------------------------------------------------------------------------

    def _show_pdf(self, path: Path, citation: Citation) -> None:
        assert citation.page is not None
        if not PDFIUM_LOCK.acquire(timeout=PDFIUM_WAIT_S):
            self._error(path, "The PDF engine is busy indexing; try again in a moment.")
            return
        try:
            image, rects, text = _render_page(path, citation.page, citation.start, citation.end)
        except (pdfium.PdfiumError, OSError, IndexError, ValueError) as exc:
            log.warning("cannot render %s page %s: %s", path, citation.page, exc)
            self._error(path, f"Cannot show page {citation.page} of this PDF: {exc}")
            return
        finally:
            PDFIUM_LOCK.release()
        _paint_highlights(image, rects)
        self.mode = "pdf"
        self.current_page = citation.page
        self.highlight_rects = rects
        self._pdf_text = text
        self.title.setText(f"{path.name} \u2014 page {citation.page}")
        self.page_label.setPixmap(QPixmap.fromImage(image))
        self.page_label.resize(image.size())
        self.stack.setCurrentWidget(self.scroll_area)
        if rects:
            first = rects[0]
            margin = max(50, self.scroll_area.viewport().height() // 3)
            self.scroll_area.ensureVisible(int(first.center().x()), int(first.top()), 50, margin)

    # -- other formats ------------------------------------------------------------------------

    def _show_text(self, path: Path, citation: Citation) -> None:
        try:
            document = read_document(path)
            text = document.page_text(citation.page)
        except (DocumentError, IndexError) as exc:
            self._error(path, f"Cannot read this file: {exc}")
            return
        start = max(0, min(citation.start, len(text)))
        end = max(start, min(citation.end, len(text)))
        # Python indexes code points; QTextDocument counts UTF-16 units.
        q_start = _utf16_len(text[:start])
        q_end = q_start + _utf16_len(text[start:end])
        self.text_view.setPlainText(text)  # plain text: document content is never markup
        cursor = QTextCursor(self.text_view.document())
        cursor.setPosition(q_start)
        cursor.setPosition(q_end, QTextCursor.MoveMode.KeepAnchor)
        selection = QTextEdit.ExtraSelection()
        fmt = QTextCharFormat()
        fmt.setBackground(HIGHLIGHT_FILL.lighter(110))
        selection.format = fmt
        selection.cursor = cursor
        self.text_view.setExtraSelections([selection])
        # Scroll so the end, then the start, is visible: a long span shows from its beginning.
        view_cursor = QTextCursor(self.text_view.document())
        view_cursor.setPosition(q_end)
        self.text_view.setTextCursor(view_cursor)
        self.text_view.ensureCursorVisible()
        view_cursor.setPosition(q_start)
        self.text_view.setTextCursor(view_cursor)
        self.text_view.ensureCursorVisible()
        self._selection = (q_start, q_end)
        self.mode = "text"
        self.current_page = citation.page
        label = path.name if citation.page is None else f"{path.name} \u2014 page {citation.page}"
        self.title.setText(f"{label} \u2014 {citation.heading}" if citation.heading else label)
        self.stack.setCurrentWidget(self.text_view)

    # -- helpers ------------------------------------------------------------------------------

    def _reset(self) -> None:
        self.mode = "empty"
        self.highlight_rects = []
        self.current_page = None
        self.current_path = None
        self._pdf_text = ""
        self._selection = None
        self.open_button.setEnabled(False)
        self.page_label.clear()
        self.text_view.clear()
        self.text_view.setExtraSelections([])

    def _error(self, path: Path, message: str) -> None:
        self.mode = "error"
        self.title.setText(path.name)
        self._show_message(message)

    def _show_message(self, message: str) -> None:
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _render_page(
    path: Path, page_number: int, start: int, end: int
) -> tuple[QImage, list[QRectF], str]:
    """Render one page and locate ``page_text[start:end]`` on it. Caller holds PDFIUM_LOCK."""
    pdf = pdfium.PdfDocument(path)
    try:
        if not 1 <= page_number <= len(pdf):
            raise IndexError(f"the PDF has {len(pdf)} pages")
        page = pdf[page_number - 1]
        try:
            bitmap = page.render(
                scale=PDF_SCALE,
                force_bitmap_format=pdfium_c.FPDFBitmap_BGRA,
                rev_byteorder=True,  # RGBA byte order: QImage.Format_RGBA8888 on any endianness
            )
            width, height = bitmap.width, bitmap.height
            # .copy(): the QImage must own its pixels; the pdfium bitmap is freed below.
            image = QImage(
                bytes(bitmap.buffer), width, height, bitmap.stride, QImage.Format.Format_RGBA8888
            ).copy()
            bitmap.close()
            rects, text = _span_rects(page, start, end, width, height)
        finally:
            page.close()
    finally:
        pdf.close()
    return image, rects, text


def _span_rects(
    page: Any, start: int, end: int, width: int, height: int
) -> tuple[list[QRectF], str]:
    if end <= start:
        return [], ""
    textpage = page.get_textpage()
    try:
        index, count = char_range(textpage, start, end)
        if count <= 0:
            return [], ""
        rects: list[QRectF] = []
        texts: list[str] = []
        for i in range(textpage.count_rects(index, count)):
            left, bottom, right, top = textpage.get_rect(i)
            texts.append(textpage.get_text_bounded(left, bottom, right, top))
            # pdfium's own page-to-pixel mapping: handles the crop box origin and /Rotate the
            # same way the render above did (PDF space has its origin bottom-left).
            x1, y1 = _to_device(page, width, height, left, top)
            x2, y2 = _to_device(page, width, height, right, bottom)
            rect = QRectF(min(x1, x2), min(y1, y2), abs(x2 - x1), abs(y2 - y1))
            rect = rect.adjusted(-HIGHLIGHT_PAD, -HIGHLIGHT_PAD, HIGHLIGHT_PAD, HIGHLIGHT_PAD)
            rects.append(rect.intersected(QRectF(0, 0, width, height)))
        return [r for r in rects if not r.isEmpty()], "\n".join(texts)
    finally:
        textpage.close()


def _to_device(page: Any, width: int, height: int, x: float, y: float) -> tuple[float, float]:
    dx, dy = ctypes.c_int(), ctypes.c_int()
    ok = pdfium_c.FPDF_PageToDevice(
        page.raw, 0, 0, width, height, 0, x, y, ctypes.byref(dx), ctypes.byref(dy)
    )
    if not ok:
        raise ValueError("pdfium could not map page coordinates")
    return float(dx.value), float(dy.value)


def _paint_highlights(image: QImage, rects: Sequence[QRectF]) -> None:
    if not rects:
        return
    painter = QPainter(image)
    try:
        # Multiply keeps the text dark under the tint instead of washing it out.
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
        for rect in rects:
            painter.fillRect(rect, HIGHLIGHT_FILL)
    finally:
        painter.end()
