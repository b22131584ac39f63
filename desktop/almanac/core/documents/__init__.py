"""Reading documents: one reader per format, each yielding a ``ParsedDocument`` with exact spans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from almanac.core.documents.errors import (
    BinaryContentError,
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    ExpansionLimitError,
    FileTooLargeError,
    NotRegularFileError,
    OutsideFoldersError,
    UnreadableFileError,
    UnsupportedFormatError,
)
from almanac.core.documents.files import OpenedFile, open_document_file, too_large
from almanac.core.records import ParsedDocument
from almanac.core.system.discovery import Confinement

# Readers parse bytes already read through ``open_document_file``: none of them opens a path, so
# none can be led to a FIFO, a device or a file outside the indexed folders.
Reader = Callable[[bytes, str], ParsedDocument]  # (data, kind)

# extension -> (kind, module name inside this package)
_FORMATS: dict[str, tuple[str, str]] = {
    ".pdf": ("pdf", "pdf"),
    ".docx": ("docx", "docx_reader"),
    ".md": ("md", "markdown"),
    ".markdown": ("md", "markdown"),
    ".html": ("html", "html"),
    ".htm": ("html", "html"),
    ".txt": ("txt", "text"),
    ".text": ("txt", "text"),
    ".rst": ("rst", "text"),
    ".csv": ("csv", "csv_reader"),
    ".xlsx": ("xlsx", "xlsx_reader"),
    ".ods": ("ods", "ods_reader"),
    ".pptx": ("pptx", "pptx_reader"),
    ".eml": ("eml", "email_reader"),
    ".mbox": ("mbox", "email_reader"),
    ".msg": ("msg", "msg_reader"),
    # images are read by OCR (ocr.py), one page per frame
    ".png": ("image", "image_reader"),
    ".jpg": ("image", "image_reader"),
    ".jpeg": ("image", "image_reader"),
    ".tif": ("image", "image_reader"),
    ".tiff": ("image", "image_reader"),
    ".webp": ("image", "image_reader"),
    ".bmp": ("image", "image_reader"),
}

# Kinds whose reading may run OCR (seconds per page): ingest reads them in its slow lane.
# A mail (.eml, .mbox, .msg) is one of them when a scanned PDF or an image is attached to it.
OCR_KINDS: frozenset[str] = frozenset({"pdf", "image", "eml", "mbox", "msg"})

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMATS)
# Bump when any reader's output changes: knowledge bases re-read their files once (vectors of
# unchanged chunks are reused).
# 5: e-mail attachments by page, with their own headings; 6: .ods attachments of e-mails read
READERS_VERSION = 6
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
# Scans are page images: a 100-page manual scanned at 300 dpi is about 90 MB (0.9 MB a page),
# over the limit every other document easily keeps. Files that can hold page images (PDF,
# multi-page TIFF) have their own: about 550 such pages, read into memory once.
DEFAULT_MAX_SCAN_BYTES = 512 * 1024 * 1024
_PAGE_IMAGE_SUFFIXES = frozenset({".pdf", ".tif", ".tiff"})

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_SCAN_BYTES",
    "OCR_KINDS",
    "READERS_VERSION",
    "SUPPORTED_EXTENSIONS",
    "BinaryContentError",
    "CorruptDocumentError",
    "DocumentError",
    "EmptyDocumentError",
    "EncryptedDocumentError",
    "ExpansionLimitError",
    "FileTooLargeError",
    "NotRegularFileError",
    "OpenedFile",
    "OutsideFoldersError",
    "UnreadableFileError",
    "UnsupportedFormatError",
    "is_supported",
    "kind_of",
    "ocr_pending",
    "open_document_file",
    "parse_document",
    "read_document",
]


def kind_of(path: Path) -> str | None:
    entry = _FORMATS.get(path.suffix.lower())
    return entry[0] if entry else None


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in _FORMATS


def size_limit(
    path: Path,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
) -> int:
    """The most bytes ``path`` may hold: the scan limit for a type that can hold page images."""
    return max_scan_bytes if path.suffix.lower() in _PAGE_IMAGE_SUFFIXES else max_file_bytes


def read_document(
    path: Path,
    *,
    max_bytes: int | None = None,
    confinement: Confinement | None = None,
) -> ParsedDocument:
    """Read one file into sections. Raises a ``DocumentError`` subclass with a specific message.

    ``max_bytes`` None: the file's type's limit (``size_limit``). With ``confinement``, a path
    whose real location is outside those folders is refused."""
    _reader_of(path)  # an unsupported type is refused before the file is even opened
    if max_bytes is None:
        max_bytes = size_limit(path)
    with open_document_file(path, confinement) as opened:
        if opened.size > max_bytes:
            raise too_large(opened.size, max_bytes)
        data = read_bytes(opened, max_bytes)
    return parse_document(path, data)


def read_bytes(opened: OpenedFile, max_bytes: int) -> bytes:
    try:
        return opened.read_all(max_bytes)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from exc


def parse_document(path: Path, data: bytes) -> ParsedDocument:
    """Parse the bytes of ``path`` (its name only gives the format)."""
    kind, reader = _reader_of(path)
    if not data:
        raise EmptyDocumentError("empty file (0 bytes)")
    try:
        document = reader(data, kind)
    except DocumentError:
        raise
    except RecursionError as exc:
        raise ExpansionLimitError(f"this {kind.upper()} file is nested too deeply") from exc
    except MemoryError as exc:
        raise ExpansionLimitError(
            f"this {kind.upper()} file expands past the memory limit"
        ) from exc
    if not any(section.text.strip() for section in document.sections):
        raise EmptyDocumentError(f"no text found in this {kind.upper()} file")
    return document


def ocr_pending(path: Path, data: bytes) -> bool:
    """Whether parsing these bytes would run OCR now (seconds a page): a scanned page or an image
    frame the OCR cache doesn't hold yet. Cheap next to the OCR itself: no page is rendered."""
    kind = kind_of(path)
    if kind not in OCR_KINDS or not data:
        return False
    if kind == "pdf":
        from almanac.core.documents import pdf

        return pdf.ocr_pending(data)
    if kind in ("eml", "mbox"):
        from almanac.core.documents import email_reader

        return email_reader.ocr_pending(data, kind)
    if kind == "msg":
        from almanac.core.documents import msg_reader

        return msg_reader.ocr_pending(data)
    from almanac.core.documents import image_reader

    return image_reader.ocr_pending(data)


def _reader_of(path: Path) -> tuple[str, Reader]:
    entry = _FORMATS.get(path.suffix.lower())
    if entry is None:
        shown = path.suffix or "(no extension)"
        raise UnsupportedFormatError(f"unsupported file type {shown}")
    kind, module_name = entry
    return kind, _load_reader(module_name)


def _load_reader(module_name: str) -> Reader:
    # Imported lazily: pypdfium2 / python-docx / lxml cost start-up time the CLI often doesn't need.
    import importlib

    module = importlib.import_module(f"almanac.core.documents.{module_name}")
    reader: Reader = module.read
    return reader
