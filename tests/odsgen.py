"""Real ODS files for tests, written as LibreOffice writes them: a ZIP package (``mimetype`` first,
stored) with ``content.xml``, ``META-INF/manifest.xml`` and, when asked, a manifest that marks the
content encrypted (what Calc writes for a password-protected file)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

MIMETYPE = "application/vnd.oasis.opendocument.spreadsheet"
NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2" office:version="1.3"'
)

# A cell: a string, a number, a bool, ("formula", text, cached number), ("date", "2026-03-01"),
# ("repeat", value, n) for number-columns-repeated, or None (an empty cell).
Cell = object


def cell_xml(cell: Cell) -> str:
    if cell is None:
        return "<table:table-cell/>"
    if isinstance(cell, bool):
        word = "true" if cell else "false"
        return (
            f'<table:table-cell office:value-type="boolean" office:boolean-value="{word}">'
            f"<text:p>{word.upper()}</text:p></table:table-cell>"
        )
    if isinstance(cell, int | float):
        return (
            f'<table:table-cell office:value-type="float" office:value="{cell}">'
            f"<text:p>{cell}</text:p></table:table-cell>"
        )
    if isinstance(cell, tuple) and cell[0] == "formula":
        _, formula, cached = cell
        return (
            f"<table:table-cell table:formula={quoteattr(formula)} "
            f'office:value-type="float" office:value="{cached}">'
            f"<text:p>{cached}</text:p></table:table-cell>"
        )
    if isinstance(cell, tuple) and cell[0] == "date":
        return (
            f'<table:table-cell office:value-type="date" office:date-value="{cell[1]}">'
            f"<text:p>{cell[1]}</text:p></table:table-cell>"
        )
    if isinstance(cell, tuple) and cell[0] == "repeat":
        inner = cell_xml(cell[1])
        return inner.replace(
            "<table:table-cell", f'<table:table-cell table:number-columns-repeated="{cell[2]}"', 1
        )
    return (
        f'<table:table-cell office:value-type="string"><text:p>{escape(str(cell))}</text:p>'
        "</table:table-cell>"
    )


def sheet_xml(name: str, rows: Sequence[Sequence[Cell]], *, hidden: bool = False) -> str:
    style = ' table:style-name="ta-hidden"' if hidden else ' table:style-name="ta1"'
    body = "".join(
        "<table:table-row>" + "".join(cell_xml(c) for c in row) + "</table:table-row>"
        for row in rows
    )
    # Calc pads every sheet with its unused rows and columns, repeated
    body += (
        '<table:table-row table:number-rows-repeated="1048000">'
        '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
    )
    return f"<table:table table:name={quoteattr(name)}{style}>{body}</table:table>"


def content_xml(sheets: Sequence[str]) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {NS}>'
        "<office:automatic-styles>"
        '<style:style style:name="ta1" style:family="table">'
        '<style:table-properties table:display="true"/></style:style>'
        '<style:style style:name="ta-hidden" style:family="table">'
        '<style:table-properties table:display="false"/></style:style>'
        "</office:automatic-styles>"
        f"<office:body><office:spreadsheet>{''.join(sheets)}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )


def ods(
    sheets: Sequence[str],
    *,
    encrypted: bool = False,
    content: str | None = None,
    mimetype: str = MIMETYPE,
) -> bytes:
    manifest_entry = (
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        + (
            '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
            '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" '
            'manifest:initialisation-vector="x"/></manifest:encryption-data>'
            if encrypted
            else ""
        )
        + "</manifest:file-entry>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.3"><manifest:file-entry manifest:full-path="/" '
        f'manifest:media-type="{MIMETYPE}"/>{manifest_entry}</manifest:manifest>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype)  # stored, first
        body = content if content is not None else content_xml(sheets)
        archive.writestr("content.xml", body, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def support_workbook() -> bytes:
    """Two visible sheets (one with a formula and a date), one hidden sheet."""
    return ods(
        [
            sheet_xml(
                "Compatibility",
                [
                    ["Router", "Works with", "Ports"],
                    ["TR-7", "Hearthly thermostat T3", ("formula", "of:=[.C3]*2", 8)],
                    ["TR-9", "Lumen bridge", 4],
                    [None, None, None],
                    ["TR-11", ("repeat", "Any hub", 2)],
                ],
            ),
            sheet_xml("Releases", [["Version", "Date"], ["4.2", ("date", "2026-03-01")]]),
            sheet_xml("Scratch", [["Note"], ["secret internal markup 37%"]], hidden=True),
        ]
    )
