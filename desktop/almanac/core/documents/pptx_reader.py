"""PPTX via python-pptx: a slide is a page (1-based slide number in citations), its title is the
heading, then its text boxes and tables in reading order, then the speaker notes.

Tables become one line per row, ``Header: value; Header: value`` like CSV, so a row cited alone
still says what each value is.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Iterator
from typing import Any

from almanac.core.documents.archive import check_office_zip
from almanac.core.documents.errors import CorruptDocumentError, DocumentError
from almanac.core.documents.text import BlockWriter
from almanac.core.records import ParsedDocument, Section

NOTES_HEADING = "Speaker notes"


def read(data: bytes, kind: str = "pptx") -> ParsedDocument:
    check_office_zip(data, "PPTX", "PowerPoint .ppt")
    presentation = _open(data)
    pages: list[str] = []
    sections: list[Section] = []
    try:
        for number, slide in enumerate(presentation.slides, start=1):
            text, slide_sections = _slide(slide, number)
            pages.append(text)
            sections.extend(dataclasses.replace(s, page=number) for s in slide_sections)
    except DocumentError:
        raise
    except Exception as exc:  # python-pptx surfaces malformed parts as assorted errors
        raise CorruptDocumentError(f"PPTX content is damaged ({type(exc).__name__})") from exc
    return ParsedDocument("pptx", tuple(pages), tuple(sections), paged=True)


def _open(data: bytes) -> Any:
    import pptx

    try:
        return pptx.Presentation(io.BytesIO(data))
    except KeyError as exc:
        raise CorruptDocumentError(
            "not a valid PPTX file (a presentation part is missing)"
        ) from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise CorruptDocumentError("not a valid PPTX file (damaged ZIP archive)") from exc
    except SyntaxError as exc:  # lxml's XMLSyntaxError
        raise CorruptDocumentError("not a valid PPTX file (malformed XML)") from exc
    except Exception as exc:
        # e.g. a .docx renamed to .pptx: python-pptx names the wrong content type
        raise CorruptDocumentError(f"not a valid PPTX file ({type(exc).__name__}: {exc})") from exc


def _slide(slide: Any, number: int) -> tuple[str, list[Section]]:
    writer = BlockWriter()
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    writer.heading(1, title or f"Slide {number}")
    for shape in _reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            writer.block(_table_text(shape.table))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            writer.block(shape.text_frame.text)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            writer.heading(2, NOTES_HEADING)
            writer.block(notes.text)
    return writer.finish()


def _reading_order(shapes: Any) -> Iterator[Any]:
    """Shapes top to bottom, then left to right; groups are opened in place."""

    def position(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if shape.shape_type is not None and int(shape.shape_type) == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _table_text(table: Any) -> str:
    rows = [[" ".join(cell.text.split()) for cell in row.cells] for row in table.rows]
    if not rows:
        return ""
    header, lines = rows[0], []
    for row in rows[1:]:
        fields = [
            f"{(header[i] if i < len(header) else '') or f'Column {i + 1}'}: {value}"
            for i, value in enumerate(row)
            if value
        ]
        if fields:
            lines.append("; ".join(fields))
    if not lines:  # a one-row table is a line of labels, not a header
        return " | ".join(cell for cell in header if cell)
    return "\n".join(lines)
