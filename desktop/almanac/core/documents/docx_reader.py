"""DOCX: body paragraphs and tables in document order; Heading/Title styles give heading paths."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from almanac.core.documents.archive import check_office_zip
from almanac.core.documents.errors import CorruptDocumentError, DocumentError
from almanac.core.documents.text import BlockWriter
from almanac.core.records import ParsedDocument

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"heading ([1-9])", re.IGNORECASE)


def read(data: bytes, kind: str = "docx") -> ParsedDocument:
    document = _open(data)
    writer = BlockWriter()
    try:
        for element in _body_blocks(document.element.body):
            _write_block(writer, element, document)
    except DocumentError:
        raise
    except Exception as exc:  # python-docx surfaces malformed parts as assorted errors
        raise CorruptDocumentError(f"DOCX content is damaged ({type(exc).__name__})") from exc
    text, sections = writer.finish()
    return ParsedDocument("docx", (text,), tuple(sections))


def _open(data: bytes) -> Any:
    check_office_zip(data, "DOCX", "Word .doc")
    import docx

    try:
        return docx.Document(io.BytesIO(data))
    except KeyError as exc:
        raise CorruptDocumentError("not a valid DOCX file (word/document.xml is missing)") from exc
    except SyntaxError as exc:  # lxml's XMLSyntaxError
        raise CorruptDocumentError("not a valid DOCX file (malformed XML)") from exc
    except ValueError as exc:
        # python-docx's message names the content type, e.g. for an .xlsx renamed to .docx
        raise CorruptDocumentError(f"not a Word document ({exc})") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise CorruptDocumentError("not a valid DOCX file (damaged ZIP archive)") from exc
    except Exception as exc:
        raise CorruptDocumentError(f"not a valid DOCX file ({type(exc).__name__})") from exc


def _body_blocks(container: Any) -> Iterator[Any]:
    """Paragraph and table elements in order, looking inside content controls (w:sdt)."""
    for child in container.iterchildren():
        if child.tag in (f"{_W}p", f"{_W}tbl"):
            yield child
        elif child.tag == f"{_W}sdt" and not _is_table_of_contents(child):
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from _body_blocks(content)


def _is_table_of_contents(sdt: Any) -> bool:
    # Word's generated TOC repeats every heading with page numbers: noise for retrieval.
    gallery = sdt.find(f"{_W}sdtPr/{_W}docPartObj/{_W}docPartGallery")
    return gallery is not None and "Table of Contents" in (gallery.get(f"{_W}val") or "")


def _write_block(writer: BlockWriter, element: Any, document: Any) -> None:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    if element.tag == f"{_W}tbl":
        writer.block(_table_text(Table(element, document)))
        return
    paragraph = Paragraph(element, document)
    level = _heading_level(paragraph)
    if level is None:
        writer.block(paragraph.text)
    else:
        writer.heading(level, paragraph.text)


def _heading_level(paragraph: Any) -> int | None:
    style = paragraph.style
    # Custom styles based on "Heading 2" (e.g. "My Heading") are headings too.
    for _ in range(8):
        if style is None:
            return None
        name = style.name or ""
        if name == "Title":
            return 0
        match = _HEADING_STYLE.fullmatch(name)
        if match:
            return int(match.group(1))
        style = style.base_style
    return None


def _table_text(table: Any) -> str:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep it once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = " ".join(cell.text.split())
            if text:
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)
