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
    FileTooLargeError,
    UnreadableFileError,
    UnsupportedFormatError,
)
from almanac.core.records import ParsedDocument

Reader = Callable[[Path], ParsedDocument]

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
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_FORMATS)
# Bump when any reader's output changes: knowledge bases re-read their files once (vectors of
# unchanged chunks are reused).
READERS_VERSION = 2
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "READERS_VERSION",
    "SUPPORTED_EXTENSIONS",
    "BinaryContentError",
    "CorruptDocumentError",
    "DocumentError",
    "EmptyDocumentError",
    "EncryptedDocumentError",
    "FileTooLargeError",
    "UnreadableFileError",
    "UnsupportedFormatError",
    "is_supported",
    "kind_of",
    "read_document",
]


def kind_of(path: Path) -> str | None:
    entry = _FORMATS.get(path.suffix.lower())
    return entry[0] if entry else None


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in _FORMATS


def read_document(path: Path, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ParsedDocument:
    """Read one file into sections. Raises a ``DocumentError`` subclass with a specific message."""
    entry = _FORMATS.get(path.suffix.lower())
    if entry is None:
        shown = path.suffix or "(no extension)"
        raise UnsupportedFormatError(f"unsupported file type {shown}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise EmptyDocumentError("empty file (0 bytes)")
    if size > max_bytes:
        raise FileTooLargeError(
            f"file too large: {size / 2**20:.0f} MiB exceeds the {max_bytes / 2**20:.0f} MiB limit"
        )
    kind, module_name = entry
    reader = _load_reader(module_name)
    try:
        document = reader(path)
    except DocumentError:
        raise
    except PermissionError as exc:
        raise UnreadableFileError("permission denied: this file is not readable") from exc
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from exc
    if not any(section.text.strip() for section in document.sections):
        raise EmptyDocumentError(f"no text found in this {kind.upper()} file")
    return document


def _load_reader(module_name: str) -> Reader:
    # Imported lazily: pypdfium2 / python-docx / lxml cost start-up time the CLI often doesn't need.
    import importlib

    module = importlib.import_module(f"almanac.core.documents.{module_name}")
    reader: Reader = module.read
    return reader
