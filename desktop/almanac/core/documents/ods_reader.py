"""ODS (OpenDocument spreadsheet, LibreOffice Calc) read exactly like XLSX: each visible sheet is a
section headed ``Sheet: name``; each data row is one line, ``Row N: Header: value; Header: value``
with the sheet's row number (``xlsx_reader.row_lines`` renders both).

No library: an ODS file is a ZIP package whose ``content.xml`` holds every sheet, and it is read
here with lxml (already a dependency) as a stream of rows, after the same ZIP-bomb checks as the
Office formats (``archive.check_office_zip``) and with a parser that resolves no entity, loads no
DTD and reaches no network. The one maintained-looking candidate, odfpy, was last released in 2020
and builds a DOM of the whole document; see the README's format table.

Formulas are read as the values the spreadsheet cached when it last saved the file
(``office:value`` and friends; the formula text is ignored). Hidden sheets (a table style with
``table:display="false"``) are skipped and named in the file's warnings. Repeated rows and columns
(``number-rows-repeated``: Calc writes a million empty rows that way) are counted, not expanded,
unless they hold data.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from almanac.core.documents.archive import check_office_zip
from almanac.core.documents.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from almanac.core.documents.text import BlockWriter
from almanac.core.documents.xlsx_reader import MAX_ROWS_PER_SHEET, row_lines
from almanac.core.records import ParsedDocument

MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
# Columns a row may hold (Calc's own limit is 16,384): a repeated cell with data stops there.
MAX_COLUMNS = 16_384

_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"

_T_TABLE = f"{{{_TABLE}}}table"
_T_ROW = f"{{{_TABLE}}}table-row"
_T_CELL = f"{{{_TABLE}}}table-cell"
_T_COVERED = f"{{{_TABLE}}}covered-table-cell"
_S_STYLE = f"{{{_STYLE}}}style"
_S_TABLE_PROPS = f"{{{_STYLE}}}table-properties"
_X_P = f"{{{_TEXT}}}p"
_X_S = f"{{{_TEXT}}}s"
_X_TAB = f"{{{_TEXT}}}tab"
_X_BREAK = f"{{{_TEXT}}}line-break"
_X_NOTE = f"{{{_OFFICE}}}annotation"

_DURATION = re.compile(r"^-?PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def read(data: bytes, kind: str = "ods") -> ParsedDocument:
    check_office_zip(data, "ODS", "binary spreadsheet (.xls)")
    content = _content(data)
    writer = BlockWriter()
    skipped: list[str] = []
    for name, hidden, rows in _sheets(content):
        if hidden:
            skipped.append(name)
            for _ in rows:  # consumed, not rendered: the stream moves on to the next sheet
                pass
            continue
        lines = list(row_lines(rows))
        if lines:
            writer.heading(1, f"Sheet: {name}")
            writer.block("\n".join(lines))
    text, sections = writer.finish()
    if not sections:
        raise EmptyDocumentError("ODS has no data rows in its visible sheets")
    warnings = (f"hidden sheet(s) skipped: {', '.join(skipped)}",) if skipped else ()
    return ParsedDocument("ods", (text,), tuple(sections), warnings=warnings)


def _content(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            mimetype = (
                archive.read("mimetype").decode("ascii", "replace").strip()
                if ("mimetype" in names)
                else ""
            )
            if mimetype and mimetype != MIMETYPE:
                raise CorruptDocumentError(f"not an ODS spreadsheet (the package is {mimetype})")
            if "META-INF/manifest.xml" in names and b"encryption-data" in archive.read(
                "META-INF/manifest.xml"
            ):
                raise EncryptedDocumentError("ODS is password-protected")
            if "content.xml" not in names:
                raise CorruptDocumentError("not a valid ODS file (content.xml is missing)")
            return archive.read("content.xml")
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise CorruptDocumentError(
            f"not a valid ODS file (damaged ZIP archive: {type(exc).__name__})"
        ) from exc


def _sheets(content: bytes) -> Iterator[tuple[str, bool, Iterator[tuple[int, list[Any]]]]]:
    """(sheet name, hidden, its rows) in order; each sheet's rows must be consumed before the
    next sheet is asked for (one pass over the XML)."""
    from lxml import etree

    events = etree.iterparse(
        io.BytesIO(content),
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
    )
    hidden_styles: set[str] = set()
    stream = _guarded(events)
    for event, element in stream:
        if event == "end" and element.tag == _S_STYLE:
            props = element.find(_S_TABLE_PROPS)
            if props is not None and props.get(f"{{{_TABLE}}}display") == "false":
                hidden_styles.add(element.get(f"{{{_STYLE}}}name", ""))
        elif event == "start" and element.tag == _T_TABLE:
            name = element.get(f"{{{_TABLE}}}name") or "Sheet"
            hidden = element.get(f"{{{_TABLE}}}style-name", "") in hidden_styles
            yield name, hidden, _rows(stream)


def _guarded(events: Any) -> Iterator[tuple[str, Any]]:
    from lxml import etree

    try:
        yield from events
    except etree.XMLSyntaxError as exc:
        raise CorruptDocumentError(f"ODS content is damaged (bad XML: {exc.msg})") from exc


def _rows(stream: Iterator[tuple[str, Any]]) -> Iterator[tuple[int, list[Any]]]:
    """The rows of the sheet whose start tag was just read, until its end tag."""
    number = 0
    depth = 0  # a table nested in a cell (rare) is read as part of its row
    for event, element in stream:
        tag = element.tag
        if tag == _T_TABLE:
            if event == "start":
                depth += 1
                continue
            if depth == 0:
                element.clear()
                return
            depth -= 1
            continue
        if event != "end" or tag != _T_ROW or depth:
            continue
        repeat = _count(element, "number-rows-repeated")
        cells = _cells(element)
        _drop(element)
        if not any(value is not None and value != "" for value in cells):
            number += repeat  # empty rows only move the row number on
            continue
        for _ in range(repeat):
            number += 1
            if number > MAX_ROWS_PER_SHEET:
                break
            yield number, cells
        if number > MAX_ROWS_PER_SHEET:
            break
    # past the row limit: the rest of this sheet is read and thrown away
    for event, element in stream:
        if element.tag == _T_TABLE and event == "end":
            if depth == 0:
                return
            depth -= 1
        elif element.tag == _T_TABLE:
            depth += 1
        elif event == "end" and element.tag == _T_ROW:
            _drop(element)


def _cells(row: Any) -> list[Any]:
    values: list[Any] = []
    pending_empty = 0  # empty cells are only written out when data follows them
    for cell in row:
        if cell.tag not in (_T_CELL, _T_COVERED):
            continue
        repeat = _count(cell, "number-columns-repeated")
        value = _value(cell) if cell.tag == _T_CELL else None
        if value is None or value == "":
            pending_empty += repeat
            continue
        if len(values) + pending_empty >= MAX_COLUMNS:
            break
        values.extend([None] * pending_empty)
        pending_empty = 0
        values.extend([value] * min(repeat, MAX_COLUMNS - len(values)))
    return values


def _value(cell: Any) -> Any:
    kind = cell.get(f"{{{_OFFICE}}}value-type")
    try:
        if kind in ("float", "percentage", "currency"):
            return float(cell.get(f"{{{_OFFICE}}}value"))
        if kind == "boolean":
            return cell.get(f"{{{_OFFICE}}}boolean-value", "").lower() == "true"
        if kind == "date":
            return _date(cell.get(f"{{{_OFFICE}}}date-value", ""))
        if kind == "time":
            return _time(cell.get(f"{{{_OFFICE}}}time-value", ""))
    except (TypeError, ValueError):
        pass  # a value attribute that doesn't parse: the text Calc showed is the value
    return "\n".join(_paragraph(p) for p in cell if p.tag == _X_P)


def _date(value: str) -> dt.date | dt.datetime:
    if "T" in value:
        return dt.datetime.fromisoformat(value)
    return dt.date.fromisoformat(value)


def _time(value: str) -> dt.time | str:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(value)
    hours, minutes, seconds = match.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    if total >= 86_400:
        return value  # a duration past a day is no time of day: shown as written
    whole = int(total)
    return dt.time(whole // 3600, whole % 3600 // 60, whole % 60)


def _paragraph(element: Any) -> str:
    """A text:p's text, with text:s spaces and tabs as written, annotations left out."""
    parts: list[str] = [element.text or ""]
    for child in element:
        if child.tag == _X_NOTE:
            pass
        elif child.tag == _X_S:
            parts.append(" " * _count(child, "c", _TEXT))
        elif child.tag == _X_TAB:
            parts.append("\t")
        elif child.tag == _X_BREAK:
            parts.append("\n")
        else:
            parts.append(_paragraph(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _count(element: Any, attribute: str, namespace: str = _TABLE) -> int:
    try:
        return max(1, int(element.get(f"{{{namespace}}}{attribute}", "1")))
    except ValueError:
        return 1


def _drop(element: Any) -> None:
    """Free a row read from the stream (and the rows before it) so memory stays one row."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]
