"""XLSX and PPTX readers on real files written with their own libraries; specific errors."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest

from almanac.core.documents import (
    CorruptDocumentError,
    EncryptedDocumentError,
    ExpansionLimitError,
    read_document,
)
from almanac.core.documents.archive import OLE_MAGIC
from almanac.core.records import ParsedDocument


def check_spans(doc: ParsedDocument) -> None:
    assert doc.sections
    for section in doc.sections:
        assert doc.page_text(section.page)[section.start : section.end] == section.text
        assert (section.page is not None) == doc.paged


# --- XLSX --------------------------------------------------------------------------------------


def write_xlsx(path: Path) -> Path:
    import xlsxwriter  # writes cached formula values, as Excel does

    book = xlsxwriter.Workbook(str(path))
    prices = book.add_worksheet("Prices")
    prices.write_row(0, 0, ["Model", "Price", "Released", "In stock"])
    prices.write_row(1, 0, ["TR-7", 129.5, None, True])
    prices.write_datetime(
        1, 2, dt.datetime(2024, 3, 1), book.add_format({"num_format": "yyyy-mm-dd"})
    )
    prices.write_row(2, 0, ["TR-9", 199])
    prices.write_formula(3, 0, '="TR-"&"11"', None, "TR-11")
    prices.write_formula(3, 1, "=B3*2", None, 398)
    empty = book.add_worksheet("Empty")
    empty.write(0, 0, None)
    secret = book.add_worksheet("Internal")
    secret.write_row(0, 0, ["Code", "Margin"])
    secret.write_row(1, 0, ["TR-7", "secret margin 41%"])
    secret.hide()
    compat = book.add_worksheet("Compatibility")
    compat.write_row(0, 0, ["Router", "Works with"])
    compat.write_row(4, 0, ["TR-7", "Hearthly T3"])
    book.close()
    return path


def test_xlsx_sheets_rows_cached_formulas_hidden_skipped(tmp_path: Path):
    doc = read_document(write_xlsx(tmp_path / "prices.xlsx"))
    check_spans(doc)
    text = doc.pages[0]
    assert "Row 2: Model: TR-7; Price: 129.5; Released: 2024-03-01; In stock: TRUE" in text
    assert "Row 3: Model: TR-9; Price: 199" in text
    assert "Row 4: Model: TR-11; Price: 398" in text  # cached values, not "=B3*2"
    assert "Row 5: Router: TR-7; Works with: Hearthly T3" in text  # sheet row numbers kept
    assert "secret margin" not in text and "Internal" in doc.warnings[0]
    headings = [s.heading_path for s in doc.sections]
    assert ("Sheet: Prices",) in headings and ("Sheet: Compatibility",) in headings
    assert all("Empty" not in h[0] for h in headings)


def test_xlsx_password_protected_is_named(tmp_path: Path):
    path = tmp_path / "locked.xlsx"
    # What Excel writes for a password-protected workbook: an OLE container, EncryptedPackage.
    path.write_bytes(OLE_MAGIC + b"\0" * 64 + "EncryptedPackage".encode("utf-16-le") + b"\0" * 64)
    with pytest.raises(EncryptedDocumentError, match="password-protected"):
        read_document(path)


def test_xlsx_corrupt_and_wrong_package(tmp_path: Path):
    good = write_xlsx(tmp_path / "good.xlsx").read_bytes()
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptDocumentError, match="XLSX"):
        read_document(cut)
    other = tmp_path / "deck.xlsx"
    other.write_bytes(build_pptx_bytes())
    with pytest.raises(CorruptDocumentError, match="XLSX"):
        read_document(other)


def test_zip_bomb_xlsx_and_pptx_refused_before_inflating(tmp_path: Path):
    for name in ("bomb.xlsx", "bomb.pptx"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (40 * 2**20))
        (tmp_path / name).write_bytes(buffer.getvalue())
        with pytest.raises(ExpansionLimitError, match="ZIP bomb"):
            read_document(tmp_path / name)


# --- PPTX --------------------------------------------------------------------------------------


def build_pptx_bytes() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    first.shapes.title.text = "Resetting the TR-7"
    first.placeholders[1].text_frame.text = "Hold the reset button for 30 seconds."
    first.notes_slide.notes_text_frame.text = "Customers often release it after 10 seconds."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Price list"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([("Model", "Price"), ("TR-7", "129 EUR"), ("TR-9", "199 EUR")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    blank = deck.slides.add_slide(deck.slide_layouts[6])  # blank, no title
    box = blank.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1))
    box.text_frame.text = "Support hours: 8 to 18"
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_pptx_slides_are_pages_titles_headings_notes_tables(tmp_path: Path):
    path = tmp_path / "training.pptx"
    path.write_bytes(build_pptx_bytes())
    doc = read_document(path)
    check_spans(doc)
    assert doc.paged and len(doc.pages) == 3
    by_page = {s.page: [] for s in doc.sections}
    for s in doc.sections:
        by_page[s.page].append(s)
    assert by_page[1][0].heading_path == ("Resetting the TR-7",)
    assert "30 seconds" in by_page[1][0].text
    notes = [s for s in by_page[1] if s.heading_path[-1] == "Speaker notes"]
    assert notes and "10 seconds" in notes[0].text
    assert "Model: TR-7; Price: 129 EUR\nModel: TR-9; Price: 199 EUR" in doc.pages[1]
    assert by_page[2][0].heading_path == ("Price list",)
    assert by_page[3][0].heading_path == ("Slide 3",) and "8 to 18" in doc.pages[2]


def test_pptx_corrupt(tmp_path: Path):
    data = build_pptx_bytes()
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if item.filename != "ppt/presentation.xml":
                dst.writestr(item, src.read(item))
    (tmp_path / "broken.pptx").write_bytes(broken.getvalue())
    with pytest.raises(CorruptDocumentError, match="PPTX"):
        read_document(tmp_path / "broken.pptx")
    (tmp_path / "noise.pptx").write_bytes(b"PK\x03\x04 not really a zip" * 10)
    with pytest.raises(CorruptDocumentError, match="PPTX"):
        read_document(tmp_path / "noise.pptx")
