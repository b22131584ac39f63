"""XLSX via openpyxl: each visible sheet is a section headed by its name; each data row is one
line, ``Row N: Header: value; Header: value`` (the CSV rendering plus the sheet row number, so a
citation says where in the workbook the passage is).

Formulas are read as the values Excel cached when it last saved the file (``data_only``): the
formula text means nothing to a reader and recomputing it would need a spreadsheet engine. A
formula cell that was never computed (a file written by a script) has no cached value and is left
out. Hidden and very hidden sheets are skipped: they hold lookup tables and scratch work, not
what the author shows.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from almanac.core.documents.archive import check_office_zip
from almanac.core.documents.errors import (
    CorruptDocumentError,
    DocumentError,
    EmptyDocumentError,
)
from almanac.core.documents.text import BlockWriter
from almanac.core.records import ParsedDocument

# Bounds a sheet that declares a million formatted but empty rows: we stop at this many rows.
MAX_ROWS_PER_SHEET = 200_000


def read(data: bytes, kind: str = "xlsx") -> ParsedDocument:
    check_office_zip(data, "XLSX", "Excel .xls")
    workbook = _open(data)
    writer = BlockWriter()
    skipped: list[str] = []
    try:
        for sheet in workbook.worksheets:
            if sheet.sheet_state != "visible":
                skipped.append(sheet.title)
                continue
            lines = list(_sheet_lines(sheet.iter_rows(values_only=True)))
            if lines:
                writer.heading(1, f"Sheet: {sheet.title}")
                writer.block("\n".join(lines))
    except DocumentError:
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError, SyntaxError) as exc:
        raise CorruptDocumentError(f"XLSX content is damaged ({type(exc).__name__})") from exc
    finally:
        workbook.close()
    text, sections = writer.finish()
    if not sections:
        raise EmptyDocumentError("XLSX has no data rows in its visible sheets")
    warnings = (f"hidden sheet(s) skipped: {', '.join(skipped)}",) if skipped else ()
    return ParsedDocument("xlsx", (text,), tuple(sections), warnings=warnings)


def _open(data: bytes) -> Any:
    import openpyxl

    try:
        return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except KeyError as exc:
        raise CorruptDocumentError("not a valid XLSX file (a workbook part is missing)") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise CorruptDocumentError("not a valid XLSX file (damaged ZIP archive)") from exc
    except Exception as exc:  # openpyxl reports malformed XML and wrong packages variously
        raise CorruptDocumentError(f"not a valid XLSX file ({type(exc).__name__})") from exc


def _sheet_lines(rows: Iterable[tuple[Any, ...]]) -> Iterable[str]:
    return row_lines(enumerate(rows, start=1))


def row_lines(rows: Iterable[tuple[int, Sequence[Any]]]) -> Iterable[str]:
    """Rows as (sheet row number, cell values). The first non-empty row is the header; later rows
    are rendered against it. Shared by the ODS reader, so both spreadsheets read alike."""
    header: list[str] | None = None
    for number, row in rows:
        if number > MAX_ROWS_PER_SHEET:
            break
        cells = [cell_text(value) for value in row]
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        fields = [
            f"{(header[i] if i < len(header) else '') or f'Column {i + 1}'}: {value}"
            for i, value in enumerate(cells)
            if value
        ]
        yield f"Row {number}: " + "; ".join(fields)


def cell_text(value: Any) -> str:
    """A cell as a person reads it: whole floats without ``.0``, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.10g}" if not value.is_integer() else str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())
