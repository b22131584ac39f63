"""Shows the passage a citation points at: the PDF page fitted to the pane's width with the span
highlighted, or the text of other formats scrolled to the highlighted span.

Citations come from the index, but the files they name are read from disk when clicked, so the
viewer only opens files inside the user's knowledge-base folders (symlinks and ``..`` resolved):
a tampered index or a symlink must not turn a click into reading or launching an arbitrary file.
Index keys of non-UTF-8 file names are turned back into the real name (``discovery.key_path``).

The pane must never make the window grow: the title is elided (full path in its tooltip), every
control is small, and the page is rendered for the width the pane has, not the width it wants.

Rendering one page runs on the GUI thread on purpose: pdfium renders a normal page at this scale
in ~5 ms and the whole ``show_citation`` (open, render, locate the span, paint) takes ~40 ms for the
sample manual, well under the ~100 ms a click may take before it feels slow; a worker round trip
would add more complexity than it saves. The one thing that could stall it is ingestion holding
``PDFIUM_LOCK`` while it reads a large PDF, so the lock is taken with a timeout and the viewer says
"busy" instead of freezing the window.

Highlights are kept as rectangles in page fractions (0..1 of the page's width and height), so they
survive zoom and resize and any producer (a text span, an OCR region) can add its own.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PySide6.QtCore import QRectF, QSize, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFontMetrics,
    QImage,
    QKeySequence,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from almanac.app.chat_export import CITATION_DASH
from almanac.app.library import is_inside
from almanac.core.answering.citations import citation_location
from almanac.core.documents import DocumentError, read_document
from almanac.core.documents.pdf import PDFIUM_LOCK, char_range
from almanac.core.records import Citation
from almanac.core.system.discovery import display_key, key_path
from almanac.ui import scan_pages

__all__ = ["ElidedLabel", "SourceViewer", "ViewerMode", "is_inside"]

log = logging.getLogger(__name__)

ViewerMode = Literal["empty", "pdf", "text", "refused", "error"]

# How long a click may wait for an ingest worker to release pdfium before we give up; a resize
# re-render waits much less and keeps the old image when it can't have the lock.
PDFIUM_WAIT_S = 2.0
RESIZE_WAIT_S = 0.05
HIGHLIGHT_FILL = QColor(255, 200, 0, 90)
HIGHLIGHT_PAD = 1.5  # pixels around each text rect, so glyph edges aren't clipped
PAGE_MARGIN = 8  # pixels of pane background left and right of a fitted page
ZOOM_STEPS = (0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)
EMPTY_TEXT = "No source open.\n\nClick a [n] or a source card in an answer to see its passage here."


class ElidedLabel(QLabel):
    """A one-line label that elides in the middle instead of asking for its text's width.

    A plain QLabel's minimum size is its whole text, which is what pushed the window wider than
    the screen for long file names. ``text()`` still gives the full text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)  # file names are not markup
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(120, super().sizeHint().height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        metrics = QFontMetrics(self.font())
        rect = self.contentsRect()
        shown = metrics.elidedText(self.text(), Qt.TextElideMode.ElideMiddle, rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        flags = int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft)
        painter.drawText(rect, flags, shown)
        painter.end()


@dataclass(slots=True)
class _PdfState:
    path: Path
    page_count: int
    page: int  # shown page, 1-based
    cited_page: int
    page_size: tuple[float, float]  # points, as rendered (rotation applied)
    regions: list[QRectF]  # highlights on the cited page, page fractions
    text: str  # the page text under the cited span's rectangles


def _tool(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    button.setAccessibleName(tip.split(" (")[0])
    button.setAutoRaise(True)
    return button


class SourceViewer(QWidget):
    """A pane showing one citation's passage, with its own close button."""

    close_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Source")
        self.mode: ViewerMode = "empty"
        self.highlight_rects: list[QRectF] = []  # in the shown pixmap's pixels
        self.current_page: int | None = None
        self.current_path: Path | None = None
        self.last_opened_url: QUrl | None = None
        self.zoom = 1.0  # 1.0 = the page fits the pane's width
        self._roots: tuple[Path, ...] = ()
        self._pdf: _PdfState | None = None
        self._rendered_width = 0
        self._selection: tuple[int, int] | None = None  # UTF-16 positions in the text view

        self.title = ElidedLabel()
        self.title.setObjectName("sourceTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.close_button = _tool("\u2715", "Close the source pane (Ctrl+W)")
        self.close_button.clicked.connect(self.close_requested)

        self.prev_button = _tool("\u2039", "Previous page (Ctrl+PgUp)")
        self.next_button = _tool("\u203a", "Next page (Ctrl+PgDown)")
        self.page_info = QLabel()
        self.page_info.setObjectName("pageInfo")
        self.zoom_out_button = _tool("\u2212", "Zoom out (Ctrl+-)")
        self.zoom_in_button = _tool("+", "Zoom in (Ctrl++)")
        self.fit_button = _tool("Fit width", "Fit the page to the pane's width (Ctrl+0)")
        self.zoom_info = QLabel()
        self.open_button = _tool("Open", "Open in the default app")
        self.open_button.setEnabled(False)
        self.prev_button.clicked.connect(lambda: self.go_to_page(-1, relative=True))
        self.next_button.clicked.connect(lambda: self.go_to_page(1, relative=True))
        self.zoom_in_button.clicked.connect(lambda: self.step_zoom(1))
        self.zoom_out_button.clicked.connect(lambda: self.step_zoom(-1))
        self.fit_button.clicked.connect(self.fit_width)
        self.open_button.clicked.connect(self.open_external)

        self.message = QLabel(EMPTY_TEXT)
        self.message.setObjectName("sourceMessage")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setMinimumWidth(40)

        self.page_label = QLabel()
        self.page_label.setAccessibleName("Page image")
        self.page_label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(self.page_label)
        self.scroll_area.setWidgetResizable(False)
        self.scroll_area.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.scroll_area.setMinimumWidth(40)

        self.text_view = QTextEdit()
        self.text_view.setAccessibleName("Source text")
        self.text_view.setReadOnly(True)
        self.text_view.setAcceptRichText(False)
        self.text_view.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.text_view.setMinimumWidth(40)

        self.stack = QStackedWidget()
        for page in (self.message, self.scroll_area, self.text_view):
            self.stack.addWidget(page)

        header = QHBoxLayout()
        header.setContentsMargins(6, 4, 2, 0)
        header.addWidget(self.title, 1)
        header.addWidget(self.close_button)
        self.toolbar = QWidget()
        tools = QHBoxLayout(self.toolbar)
        tools.setContentsMargins(4, 0, 4, 0)
        tools.setSpacing(2)
        for w in (self.prev_button, self.page_info, self.next_button):
            tools.addWidget(w)
        tools.addStretch(1)
        for w in (self.zoom_out_button, self.zoom_info, self.zoom_in_button, self.fit_button):
            tools.addWidget(w)
        tools.addStretch(1)
        tools.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.stack, 1)

        inside = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (
            (QKeySequence.StandardKey.ZoomIn, lambda: self.step_zoom(1)),
            ("Ctrl+=", lambda: self.step_zoom(1)),
            (QKeySequence.StandardKey.ZoomOut, lambda: self.step_zoom(-1)),
            ("Ctrl+0", self.fit_width),
            ("Ctrl+PgUp", lambda: self.go_to_page(-1, relative=True)),
            ("Ctrl+PgDown", lambda: self.go_to_page(1, relative=True)),
        ):
            QShortcut(QKeySequence(keys), self, slot, context=inside)
        self._update_controls()

    def minimumSizeHint(self) -> QSize:
        # Whatever the content, the pane can be squeezed: the window must never grow for it.
        return QSize(160, 120)

    # -- public API ---------------------------------------------------------------------------

    def show_citation(self, citation: Citation, allowed_roots: Sequence[Path]) -> None:
        self._reset()
        self._roots = tuple(Path(r) for r in allowed_roots)
        real = key_path(citation.path)
        shown = display_key(citation.path)
        self.title.setToolTip(shown)
        path = is_inside(real, self._roots)
        if path is None:
            self.mode = "refused"
            self.title.setText(Path(shown).name)
            self._show_message(
                "This source is outside your knowledge-base folders, so it was not opened:\n"
                f"{shown}"
            )
            return
        if not path.is_file():
            self._error(shown, "This file no longer exists or is not a regular file.")
            return
        self.current_path = path
        self.open_button.setEnabled(True)
        # Images are shown like a scanned PDF page: the picture, its cited OCR lines tinted.
        if citation.page is not None and (
            path.suffix.lower() == ".pdf" or scan_pages.is_image(path)
        ):
            self._show_pdf(path, shown, citation)
        else:
            self._show_text(path, shown, citation)
        self._update_controls()

    def clear(self) -> None:
        """Back to the empty state (another chat, or nothing cited)."""
        self._reset()
        self.title.setText("")
        self.title.setToolTip("")
        self._show_message(EMPTY_TEXT)
        self._update_controls()

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
            return self._pdf.text if self._pdf is not None else ""
        if self.mode != "text" or self._selection is None:
            return ""
        cursor = QTextCursor(self.text_view.document())
        cursor.setPosition(self._selection[0])
        cursor.setPosition(self._selection[1], QTextCursor.MoveMode.KeepAnchor)
        # Qt marks line breaks in a selection with U+2029; give back the text as it was set.
        return cursor.selectedText().replace("\u2029", "\n")

    def page_count(self) -> int:
        return self._pdf.page_count if self._pdf is not None else 0

    def add_highlights(self, regions: Sequence[QRectF]) -> None:
        """Highlight more areas of the cited PDF page, in page fractions (0..1), e.g. OCR boxes."""
        if self._pdf is None:
            return
        self._pdf.regions.extend(QRectF(r) for r in regions)
        self._render(PDFIUM_WAIT_S)

    def go_to_page(self, page: int, *, relative: bool = False) -> None:
        state = self._pdf
        if state is None or self.mode != "pdf":
            return
        target = state.page + page if relative else page
        target = max(1, min(state.page_count, target))
        if target == state.page:
            return
        previous = state.page
        state.page = target
        if not self._render(PDFIUM_WAIT_S):
            state.page = previous
            return
        self.scroll_area.verticalScrollBar().setValue(0)
        self._update_controls()

    def step_zoom(self, direction: int) -> None:
        if self.mode != "pdf":
            return
        larger = [z for z in ZOOM_STEPS if z > self.zoom + 1e-6]
        smaller = [z for z in ZOOM_STEPS if z < self.zoom - 1e-6]
        if direction > 0 and larger:
            self.set_zoom(larger[0])
        elif direction < 0 and smaller:
            self.set_zoom(smaller[-1])

    def fit_width(self) -> None:
        self.set_zoom(1.0)

    def set_zoom(self, zoom: float) -> None:
        if self.mode != "pdf":
            return
        self.zoom = max(ZOOM_STEPS[0], min(ZOOM_STEPS[-1], zoom))
        self._render(PDFIUM_WAIT_S)
        self._update_controls()

    def fit_target_width(self) -> int:
        """The width (device-independent pixels) a page has at 100 %: the pane's, less margins."""
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        frame = 2 * self.scroll_area.frameWidth()
        # The scroll bar is always reserved, so that it appearing doesn't re-fit the page.
        return max(100, self.scroll_area.width() - frame - bar - 2 * PAGE_MARGIN)

    # -- PDF ----------------------------------------------------------------------------------

    def _show_pdf(self, path: Path, shown: str, citation: Citation) -> None:
        assert citation.page is not None
        # A scanned page has no text layer: its cited lines are the OCR boxes of the span.
        scan = None
        if not scan_pages.is_image(path):
            span = (citation.page, citation.start, citation.end)
            scan = scan_pages.ocr_regions(path, *span, wait_s=PDFIUM_WAIT_S)
        if not PDFIUM_LOCK.acquire(timeout=PDFIUM_WAIT_S):
            self._error(shown, "The PDF engine is busy indexing; try again in a moment.")
            return
        try:
            start, end = (0, 0) if scan is not None else (citation.start, citation.end)
            count, size, regions, text = _locate(path, citation.page, start, end)
        except (pdfium.PdfiumError, OSError, IndexError, ValueError) as exc:
            log.warning("cannot render %s page %s: %s", path, citation.page, exc)
            self._error(shown, f"Cannot show page {citation.page} of this PDF: {exc}")
            return
        finally:
            PDFIUM_LOCK.release()
        if scan is not None:
            regions, text = scan
        self._pdf = _PdfState(path, count, citation.page, citation.page, size, regions, text)
        self.mode = "pdf"
        self.zoom = 1.0
        label = citation_location(shown, citation.page, dash=CITATION_DASH)
        self.title.setText(label)
        self.title.setAccessibleName(f"Source: {label}")
        if not self._render(PDFIUM_WAIT_S):
            self._pdf = None
            self._error(shown, "The PDF engine is busy indexing; try again in a moment.")
            return
        self.stack.setCurrentWidget(self.scroll_area)
        self.scroll_to_highlight()

    def scroll_to_highlight(self) -> None:
        if not self.highlight_rects:
            return
        first = self.highlight_rects[0]
        ratio = self.page_label.pixmap().devicePixelRatio() or 1.0
        margin = max(50, self.scroll_area.viewport().height() // 3)
        self.scroll_area.ensureVisible(0, int(first.top() / ratio), 0, margin)
        # Passages start at the left margin: keep it in view rather than centring the highlight.
        self.scroll_area.horizontalScrollBar().setValue(0)

    def _render(self, wait_s: float) -> bool:
        """Render the shown page for the pane's width and zoom; False when pdfium is busy."""
        state = self._pdf
        if state is None:
            return False
        width_pt = state.page_size[0]
        target = self.fit_target_width() * self.zoom
        ratio = self.devicePixelRatioF() or 1.0
        scale = target * ratio / width_pt
        if not PDFIUM_LOCK.acquire(timeout=wait_s):
            return False
        try:
            image = _render_page(state.path, state.page, scale)
        except (pdfium.PdfiumError, OSError, IndexError, ValueError) as exc:
            log.warning("cannot render %s page %s: %s", state.path, state.page, exc)
            return False
        finally:
            PDFIUM_LOCK.release()
        rects: list[QRectF] = []
        if state.page == state.cited_page:
            w, h = image.width(), image.height()
            bounds = QRectF(0, 0, w, h)
            for r in state.regions:
                pixel = QRectF(r.x() * w, r.y() * h, r.width() * w, r.height() * h)
                pixel = pixel.adjusted(-HIGHLIGHT_PAD, -HIGHLIGHT_PAD, HIGHLIGHT_PAD, HIGHLIGHT_PAD)
                pixel = pixel.intersected(bounds)
                if not pixel.isEmpty():
                    rects.append(pixel)
        _paint_highlights(image, rects)
        self.highlight_rects = rects
        self.current_page = state.page
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        self.page_label.setPixmap(pixmap)
        self.page_label.resize(int(image.width() / ratio), int(image.height() / ratio))
        self._rendered_width = self.fit_target_width()
        return True

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # Keep the page fitted while the splitter or window moves; a few pixels don't matter.
        if self.mode == "pdf" and abs(self.fit_target_width() - self._rendered_width) > 4:
            self._render(RESIZE_WAIT_S)

    # -- other formats ------------------------------------------------------------------------

    def _show_text(self, path: Path, shown: str, citation: Citation) -> None:
        try:
            document = read_document(path)
            text = document.page_text(citation.page)
        except (DocumentError, IndexError) as exc:
            self._error(shown, f"Cannot read this file: {exc}")
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
        label = citation_location(shown, citation.page, citation.heading, dash=CITATION_DASH)
        self.title.setText(label)
        self.title.setAccessibleName(f"Source: {label}")
        self.stack.setCurrentWidget(self.text_view)

    # -- helpers ------------------------------------------------------------------------------

    def _update_controls(self) -> None:
        pdf = self.mode == "pdf" and self._pdf is not None
        self.toolbar.setVisible(self.mode in ("pdf", "text"))
        for w in (
            self.prev_button,
            self.next_button,
            self.page_info,
            self.zoom_in_button,
            self.zoom_out_button,
            self.fit_button,
            self.zoom_info,
        ):
            w.setVisible(pdf)
        if pdf and self._pdf is not None:
            self.page_info.setText(f"{self._pdf.page} / {self._pdf.page_count}")
            self.page_info.setAccessibleName(f"Page {self._pdf.page} of {self._pdf.page_count}")
            self.prev_button.setEnabled(self._pdf.page > 1)
            self.next_button.setEnabled(self._pdf.page < self._pdf.page_count)
            # Percent of the fitted width: 100 % is "fits the pane".
            self.zoom_info.setText(f"{round(self.zoom * 100)} %")
            self.zoom_in_button.setEnabled(self.zoom < ZOOM_STEPS[-1])
            self.zoom_out_button.setEnabled(self.zoom > ZOOM_STEPS[0])

    def _reset(self) -> None:
        self.mode = "empty"
        self.highlight_rects = []
        self.current_page = None
        self.current_path = None
        self._pdf = None
        self.zoom = 1.0
        self._selection = None
        self.open_button.setEnabled(False)
        self.page_label.clear()
        self.text_view.clear()
        self.text_view.setExtraSelections([])

    def _error(self, shown: str, message: str) -> None:
        self.mode = "error"
        self.title.setText(Path(shown).name)
        self._show_message(message)

    def _show_message(self, message: str) -> None:
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)
        self._update_controls()


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _locate(
    path: Path, page_number: int, start: int, end: int
) -> tuple[int, tuple[float, float], list[QRectF], str]:
    """Page count, the page's size in points, ``page_text[start:end]``'s rectangles in page
    fractions, and the text under them. Caller holds PDFIUM_LOCK."""
    if scan_pages.is_image(path):
        return scan_pages.locate_image(path, page_number, start, end)
    pdf = pdfium.PdfDocument(path)
    try:
        count = len(pdf)
        if not 1 <= page_number <= count:
            raise IndexError(f"the PDF has {count} pages")
        page = pdf[page_number - 1]
        try:
            width, height = page.get_size()
            if width <= 0 or height <= 0:
                raise ValueError("the page has no size")
            regions, text = _span_regions(page, start, end, width, height)
        finally:
            page.close()
    finally:
        pdf.close()
    return count, (float(width), float(height)), regions, text


def _render_page(path: Path, page_number: int, scale: float) -> QImage:
    """Render one page at ``scale`` pixels per point. Caller holds PDFIUM_LOCK."""
    if scan_pages.is_image(path):
        return scan_pages.render_image(path, page_number, scale)
    pdf = pdfium.PdfDocument(path)
    try:
        if not 1 <= page_number <= len(pdf):
            raise IndexError(f"the PDF has {len(pdf)} pages")
        page = pdf[page_number - 1]
        try:
            bitmap = page.render(
                scale=scale,
                force_bitmap_format=pdfium_c.FPDFBitmap_BGRA,
                rev_byteorder=True,  # RGBA byte order: QImage.Format_RGBA8888 on any endianness
            )
            width, height = bitmap.width, bitmap.height
            # .copy(): the QImage must own its pixels; the pdfium bitmap is freed below.
            image = QImage(
                bytes(bitmap.buffer), width, height, bitmap.stride, QImage.Format.Format_RGBA8888
            ).copy()
            bitmap.close()
        finally:
            page.close()
    finally:
        pdf.close()
    return image


# Page coordinates are mapped at this many device pixels per point: _to_device rounds to whole
# pixels, so a finer grid keeps the fractions accurate to a tenth of a point.
_LOCATE_SCALE = 10


def _span_regions(
    page: Any, start: int, end: int, width_pt: float, height_pt: float
) -> tuple[list[QRectF], str]:
    if end <= start:
        return [], ""
    width, height = int(width_pt * _LOCATE_SCALE), int(height_pt * _LOCATE_SCALE)
    textpage = page.get_textpage()
    try:
        index, count = char_range(textpage, start, end)
        if count <= 0:
            return [], ""
        regions: list[QRectF] = []
        texts: list[str] = []
        for i in range(textpage.count_rects(index, count)):
            left, bottom, right, top = textpage.get_rect(i)
            texts.append(textpage.get_text_bounded(left, bottom, right, top))
            # pdfium's own page-to-pixel mapping: handles the crop box origin and /Rotate the
            # same way the render does (PDF space has its origin bottom-left).
            x1, y1 = _to_device(page, width, height, left, top)
            x2, y2 = _to_device(page, width, height, right, bottom)
            rect = QRectF(
                min(x1, x2) / width,
                min(y1, y2) / height,
                abs(x2 - x1) / width,
                abs(y2 - y1) / height,
            ).intersected(QRectF(0, 0, 1, 1))
            if not rect.isEmpty():
                regions.append(rect)
        return regions, "\n".join(texts)
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
