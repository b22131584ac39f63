"""CSV: one line per data row, rendered "Header: value; Header: value" so each row stands alone."""

from __future__ import annotations

import csv
import io

from almanac.core.documents.encoding import decode_text
from almanac.core.documents.errors import CorruptDocumentError, EmptyDocumentError
from almanac.core.documents.text import trimmed_section
from almanac.core.records import ParsedDocument

_SNIFF_CHARS = 64 * 1024
_DELIMITERS = ",;\t|"


def read(data: bytes, kind: str = "csv") -> ParsedDocument:
    text, warnings = decode_text(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    rows: list[list[str]] = []
    record_start = 1
    try:
        for row in reader:
            rows.append(row)
            record_start = reader.line_num + 1
    except csv.Error as exc:
        # Report where the bad record starts: for an unclosed quote csv only notices at the end.
        raise CorruptDocumentError(f"malformed CSV at line {record_start}: {exc}") from exc
    header = rows[0] if rows else []
    lines = [line for line in (_render(header, row) for row in rows[1:]) if line]
    if not lines:
        raise EmptyDocumentError("CSV has no data rows")
    extracted = "\n".join(lines)
    sections = tuple(
        s for s in [trimmed_section(extracted, 0, len(extracted), ())] if s is not None
    )
    return ParsedDocument("csv", (extracted,), sections, warnings=warnings)


def _delimiter(text: str) -> str:
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # a cut row confuses the sniffer
    try:
        # Only the delimiter is trusted: the sniffer also guesses doublequote=False whenever the
        # sample has no "" pair, which would silently accept malformed quoting.
        return str(csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter)
    except csv.Error:
        return ","


def _render(header: list[str], row: list[str]) -> str:
    fields: list[str] = []
    for index, value in enumerate(row):
        value = " ".join(value.split())  # quoted cells may hold line breaks; keep one row per line
        if not value:
            continue
        name = " ".join(header[index].split()) if index < len(header) else ""
        fields.append(f"{name or f'Column {index + 1}'}: {value}")
    return "; ".join(fields)
