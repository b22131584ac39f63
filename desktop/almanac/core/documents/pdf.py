"""PDF via pypdfium2: one text per page; the outline (bookmarks), when present, gives heading paths.

Page text is pdfium's text with line breaks normalized, end-of-line hyphen markers dropped and
ligatures expanded. ``char_range`` maps offsets back to pdfium char indices so a viewer can
highlight a cited span on the rendered page.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from almanac.core.documents import ocr
from almanac.core.documents.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from almanac.core.documents.text import HeadingCut, HeadingPath, HeadingStack, sections_between
from almanac.core.records import ParsedDocument, Section

# PDFium is not thread-safe, not even across different documents: every pdfium call in the
# process (ingest workers, the viewer's rendering and ``char_range``) must hold this lock.
PDFIUM_LOCK = threading.RLock()

# pdfium writes "\r\n" between lines, U+FFFE where it joined a hyphenated word across a line
# break, and passes through stray control codes from broken fonts.
_SPECIAL = re.compile(r"\r\n?|[\x00-\x08\x0b-\x1f\ufffe\uffff\ufb00-\ufb06]")


@dataclass(frozen=True, slots=True)
class _Bookmark:
    page_index: int
    order: int
    title: str
    path: HeadingPath


def read(data: bytes, kind: str = "pdf") -> ParsedDocument:
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise _load_error(exc, data) from exc
    try:
        with PDFIUM_LOCK:
            page_count = len(pdf)
            bookmarks = _bookmarks(pdf, page_count)
            pages, unreadable = _page_texts(pdf, page_count)
            scanned = [
                i
                for i, text in enumerate(pages)
                if needs_ocr(text) and i + 1 not in unreadable and _has_image(pdf, i)
            ]
        sha = hashlib.sha256(data).hexdigest() if scanned else ""
        for done, index in enumerate(scanned):
            ocr.check_cancelled()
            ocr.report_progress(done, len(scanned))
            pages[index] = ocr_page(pdf, index, sha).text
        if scanned:
            ocr.report_progress(len(scanned), len(scanned))
    finally:
        with PDFIUM_LOCK:
            pdf.close()
    if not any(page.strip() for page in pages):
        if page_count == 0:
            raise EmptyDocumentError("PDF has no pages")
        raise EmptyDocumentError("no text found: blank pages, or scans OCR could not read")
    ocr_pages = {i + 1 for i in scanned if pages[i].strip()}
    sections = [
        _ocr_marked(s) if i + 1 in ocr_pages else s
        for i, text in enumerate(pages)
        for s in _page_sections(text, i, bookmarks)
    ]
    return ParsedDocument(
        "pdf",
        tuple(pages),
        tuple(sections),
        paged=True,
        warnings=_warnings(pages, unreadable, sorted(ocr_pages)),
    )


def needs_ocr(page_text: str) -> bool:
    """A page whose text layer is empty or next to it (a scan, maybe with a stamped number)."""
    return sum(ch.isalnum() for ch in page_text) < ocr.MIN_TEXT_LAYER_CHARS


def _has_image(pdf: Any, index: int) -> bool:
    """Whether the page draws a picture: a scan does; a page of short typed text doesn't."""
    page = pdf[index]
    try:
        return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))
    finally:
        page.close()


def ocr_page(pdf: Any, index: int, data_sha256: str) -> ocr.OcrPage:
    """OCR one page of an open document. pdfium is held only while the page renders: the models
    run outside the lock, so the viewer and other readers are not stalled for seconds."""
    key = ocr.page_key(data_sha256, index, "pdf")
    cached = ocr.load_cached(key)
    if cached is not None:
        return cached  # no rendering either
    with PDFIUM_LOCK:
        page = pdf[index]
        try:
            width, height = page.get_size()
            # The detector's full resolution, no more: rendering larger would only be shrunk.
            scale = ocr.MAX_SIDE_PX / max(width, height, 1.0)
            image = page.render(scale=scale, grayscale=True).to_pil()
        finally:
            page.close()
    return ocr.recognize(image, key)


def scanned_pages(data: bytes) -> list[int]:
    """0-based indices of the pages ``read`` would OCR. Raises ``PdfiumError`` for a bad PDF."""
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
        try:
            pages, unreadable = _page_texts(pdf, len(pdf))
            return [
                i
                for i, text in enumerate(pages)
                if needs_ocr(text) and i + 1 not in unreadable and _has_image(pdf, i)
            ]
        finally:
            pdf.close()


def ocr_pending(data: bytes) -> bool:
    """Whether reading this PDF would run OCR now (a scanned page not in the OCR cache)."""
    try:
        scanned = scanned_pages(data)
    except pdfium.PdfiumError:
        return False  # the reader reports it
    if not scanned:
        return False
    sha = hashlib.sha256(data).hexdigest()
    return any(ocr.load_cached(ocr.page_key(sha, i, "pdf")) is None for i in scanned)


def ocr_page_of_file(
    data: bytes, page_number: int, *, cached_only: bool = False
) -> ocr.OcrPage | None:
    """The OCR lines of page ``page_number`` (1-based) when that page is a scan, else None.
    Served from the OCR cache when the page was indexed on this machine; with ``cached_only``
    a scanned page not in the cache gives a page with no lines."""
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
    try:
        with PDFIUM_LOCK:
            if not 1 <= page_number <= len(pdf):
                return None
            text = _normalize(_raw_page_text(pdf, page_number - 1))
            scanned = needs_ocr(text) and _has_image(pdf, page_number - 1)
        if not scanned:
            return None
        sha = hashlib.sha256(data).hexdigest()
        if cached_only:
            found = ocr.load_cached(ocr.page_key(sha, page_number - 1, "pdf"))
            return found or ocr.OcrPage("", ())
        return ocr_page(pdf, page_number - 1, sha)
    finally:
        with PDFIUM_LOCK:
            pdf.close()


def _ocr_marked(section: Section) -> Section:
    return dataclasses.replace(section, heading_path=(*section.heading_path, ocr.OCR_HEADING))


def char_range(textpage: Any, start: int, end: int) -> tuple[int, int]:
    """``(index, count)`` of the pdfium chars behind ``page_text[start:end]`` on an open textpage.

    Feed it to ``textpage.count_rects(index, count)`` / ``get_rect(i)`` to highlight a span.
    Call it while holding ``PDFIUM_LOCK``.
    """
    raw = textpage.get_text_range()
    first = _raw_index(raw, start)
    last = _raw_index(raw, max(start, end - 1))
    first_char = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, _utf16_index(raw, first))
    last_char = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, _utf16_index(raw, last))
    return first_char, max(0, last_char - first_char + 1)


def _load_error(exc: pdfium.PdfiumError, data: bytes) -> Exception:
    code = getattr(exc, "err_code", None)
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedDocumentError("PDF is password-protected")
    if code == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedDocumentError("PDF uses an unsupported encryption scheme")
    if b"%PDF-" not in data[:1024]:
        return CorruptDocumentError("not a valid PDF file (no PDF header)")
    return CorruptDocumentError("not a valid PDF file (damaged or truncated)")


def _page_texts(pdf: Any, page_count: int) -> tuple[list[str], list[int]]:
    pages: list[str] = []
    unreadable: list[int] = []
    for index in range(page_count):
        try:
            pages.append(_normalize(_raw_page_text(pdf, index)))
        except pdfium.PdfiumError:
            pages.append("")
            unreadable.append(index + 1)
    return pages, unreadable


def _raw_page_text(pdf: Any, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


def _warnings(pages: list[str], unreadable: list[int], by_ocr: list[int]) -> tuple[str, ...]:
    warnings: list[str] = []
    if by_ocr:
        warnings.append(f"{len(by_ocr)} scanned page(s) read by OCR: {_page_list(by_ocr)}")
    if unreadable:
        warnings.append(f"{len(unreadable)} page(s) could not be read: {_page_list(unreadable)}")
    blank = [i + 1 for i, text in enumerate(pages) if not text.strip() and i + 1 not in unreadable]
    if blank:
        warnings.append(f"{len(blank)} page(s) have no text: {_page_list(blank)}")
    return tuple(warnings)


def _page_list(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (", …" if len(numbers) > 10 else "")


# --- outline -----------------------------------------------------------------------------------


def _bookmarks(pdf: Any, page_count: int) -> list[_Bookmark]:
    """Outline entries in page order, each with its full heading path."""
    headings = HeadingStack()
    found: list[tuple[int | None, str, HeadingPath]] = []
    try:
        for item in pdf.get_toc():
            title = " ".join(str(item.get_title()).split())
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            path = headings.push(int(item.level), title) if title else headings.path
            found.append(
                (index if index is not None and 0 <= index < page_count else None, title, path)
            )
    except pdfium.PdfiumError:
        pass  # a damaged outline only costs us headings, not text
    bookmarks: list[_Bookmark] = []
    next_page: int | None = None
    # An entry without a destination (a pure grouping node) starts where its next entry does.
    for order in range(len(found) - 1, -1, -1):
        index, title, path = found[order]
        next_page = index if index is not None else next_page
        if next_page is not None:
            bookmarks.append(_Bookmark(next_page, order, title, path))
    return sorted(bookmarks, key=lambda b: (b.page_index, b.order))


def _page_sections(text: str, index: int, bookmarks: list[_Bookmark]) -> Iterator[Section]:
    inherited: HeadingPath = ()
    cuts: list[HeadingCut] = []
    cursor = 0
    for bookmark in bookmarks:
        if bookmark.page_index < index:
            inherited = bookmark.path
        elif bookmark.page_index == index:
            # Outline entries only name a page; find the title on it to cut where the section
            # actually starts. If it isn't there, the new path applies from the last cut on.
            match = _find_title(text, bookmark.title, cursor)
            start, end = (match.start(), match.end()) if match else (cursor, cursor)
            cuts.append(HeadingCut(start, end, bookmark.path))
            cursor = end
    yield from sections_between(text, cuts, initial_path=inherited, page=index + 1)


def _find_title(text: str, title: str, start: int) -> re.Match[str] | None:
    words = title.split()
    if not words:
        return None
    return re.compile(r"\s+".join(map(re.escape, words)), re.IGNORECASE).search(text, start)


# --- text normalization and the offset map back to pdfium --------------------------------------


def _replacement(match: re.Match[str]) -> str:
    found = match.group()
    if found[0] == "\r":
        return "\n"
    if "\ufb00" <= found <= "\ufb06":
        return unicodedata.normalize("NFKC", found)
    return ""


def _normalize(raw: str) -> str:
    return _SPECIAL.sub(_replacement, raw)


def _raw_index(raw: str, offset: int) -> int:
    """Index into ``raw`` of the character that produced ``_normalize(raw)[offset]``."""
    produced = 0
    consumed = 0
    for match in _SPECIAL.finditer(raw):
        plain = match.start() - consumed
        if offset < produced + plain:
            return consumed + offset - produced
        produced += plain
        replaced = len(_replacement(match))
        if offset < produced + replaced:
            return match.start()
        produced += replaced
        consumed = match.end()
    return min(consumed + offset - produced, max(0, len(raw) - 1))


def _utf16_index(raw: str, index: int) -> int:
    # pdfium counts text in UTF-16 units; characters beyond the BMP take two.
    return index + sum(1 for ch in raw[:index] if ord(ch) > 0xFFFF)
