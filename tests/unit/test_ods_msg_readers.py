"""ODS spreadsheets and Outlook .msg e-mails: real files built by the tests (odsgen writes the ODF
package as LibreOffice does, msggen the OLE compound file as Outlook does)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from almanac.core.documents import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    parse_document,
)
from almanac.core.documents.archive import OLE_MAGIC
from msggen import outlook_message
from odsgen import content_xml, ods, sheet_xml, support_workbook

SENT = dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC)


def test_ods_sheets_rows_cached_formulas_hidden_skipped() -> None:
    doc = parse_document(Path("compat.ods"), support_workbook())
    assert doc.kind == "ods"
    text = doc.pages[0]
    # formula cells give their cached value; repeated columns are expanded; empty rows count
    assert "Row 2: Router: TR-7; Works with: Hearthly thermostat T3; Ports: 8" in text
    assert "Row 5: Router: TR-11; Works with: Any hub; Ports: Any hub" in text
    assert "Row 2: Version: 4.2; Date: 2026-03-01" in text
    assert [s.heading_path for s in doc.sections] == [
        ("Sheet: Compatibility",),
        ("Sheet: Releases",),
    ]
    assert "secret internal markup" not in text  # the hidden sheet
    assert doc.warnings == ("hidden sheet(s) skipped: Scratch",)
    for section in doc.sections:
        assert text[section.start : section.end] == section.text


def test_ods_reads_like_xlsx(tmp_path: Path) -> None:
    import openpyxl

    rows: list[list[object]] = [
        ["Code", "Meaning", "Fixed"],
        ["E4", "fan stalled", True],
        ["E7", "0.25 A over", 2.5],
    ]
    book = openpyxl.Workbook()
    book.active.title = "Codes"
    for row in rows:
        book.active.append(row)
    book.save(tmp_path / "codes.xlsx")
    xlsx = parse_document(tmp_path / "codes.xlsx", (tmp_path / "codes.xlsx").read_bytes())
    odf = parse_document(Path("codes.ods"), ods([sheet_xml("Codes", rows)]))
    assert odf.pages == xlsx.pages


def test_ods_password_protected_corrupt_and_wrong_package() -> None:
    with pytest.raises(EncryptedDocumentError, match="ODS is password-protected"):
        parse_document(Path("a.ods"), ods([sheet_xml("S", [["a"], ["b"]])], encrypted=True))
    with pytest.raises(CorruptDocumentError, match="not a valid ODS file"):
        parse_document(Path("a.ods"), b"PK\x03\x04 this is no archive")
    with pytest.raises(CorruptDocumentError, match="bad XML"):
        parse_document(Path("a.ods"), ods([], content="<office:document-content><broken"))
    odt = ods([sheet_xml("S", [["a"], ["b"]])], mimetype="application/vnd.oasis.opendocument.text")
    with pytest.raises(CorruptDocumentError, match="not an ODS spreadsheet"):
        parse_document(Path("a.ods"), odt)
    with pytest.raises(CorruptDocumentError, match=r"old binary spreadsheet \(\.xls\)"):
        parse_document(Path("a.ods"), OLE_MAGIC + b"\0" * 600)
    with pytest.raises(EmptyDocumentError, match="no data rows"):
        parse_document(Path("a.ods"), ods([sheet_xml("S", [["only a header"]])]))


def test_ods_entities_are_not_expanded() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    ) + content_xml([sheet_xml("S", [["H"], ["&b;"]])]).split("?>", 1)[1]
    try:
        doc = parse_document(Path("a.ods"), ods([], content=bomb))
    except (CorruptDocumentError, EmptyDocumentError):
        return
    assert "aaaaaaaaaa" not in doc.pages[0]


def message(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "subject": "Printer jam on floor 3",
        "sender_name": "Dana Ops",
        "sender_email": "dana@example.com",
        "to": "Help Desk",
        "sent": SENT,
        "body": "Open tray 2 and pull the green lever.\r\n",
    }
    fields.update(overrides)
    return outlook_message(**fields)  # type: ignore[arg-type]


def test_msg_heading_header_line_body_and_attachments() -> None:
    data = message(
        attachments=[
            ("notes.txt", b"The lever is behind the toner.\n"),
            ("compat.ods", support_workbook()),
            ("setup.exe", b"MZ not read"),
        ]
    )
    doc = parse_document(Path("jam.msg"), data)
    assert doc.kind == "msg"
    heading = "Printer jam on floor 3 — Dana Ops <dana@example.com> — 2026-03-03 10:00"
    assert doc.sections[0].heading_path == (heading,)
    assert (
        "From: Dana Ops <dana@example.com> | To: Help Desk | Date: Tue, 03 Mar 2026 10:00:00"
        " +0000 | Subject: Printer jam on floor 3" in doc.sections[0].text
    )
    assert "pull the green lever" in doc.sections[0].text
    paths = [s.heading_path for s in doc.sections]
    assert (heading, "Attachment: notes.txt") in paths
    assert (heading, "Attachment: compat.ods", "Sheet: Compatibility") in paths
    assert "MZ not read" not in doc.pages[0]
    for section in doc.sections:
        assert doc.pages[0][section.start : section.end] == section.text


def test_msg_html_body_and_unreadable_attachment_named() -> None:
    data = message(
        body=None,
        html="<html><body><p>Reset the <b>router</b> first.</p></body></html>",
        attachments=[("broken.pdf", b"%PDF-1.7 no more")],
    )
    doc = parse_document(Path("html.msg"), data)
    assert "Reset the router first." in doc.pages[0]
    assert len(doc.warnings) == 1 and "broken.pdf" in doc.warnings[0]


def test_msg_encrypted_and_corrupt() -> None:
    with pytest.raises(EncryptedDocumentError, match="encrypted"):
        parse_document(Path("a.msg"), message(message_class="IPM.Note.SMIME"))
    with pytest.raises(CorruptDocumentError, match=r"not an Outlook \.msg file"):
        parse_document(Path("a.msg"), b"Subject: hi\n\nplain text named .msg\n")
    with pytest.raises(CorruptDocumentError, match=r"Outlook \.msg file is damaged"):
        parse_document(Path("a.msg"), message()[:2000])
    from msggen import compound_file

    with pytest.raises(CorruptDocumentError, match="not an Outlook message"):
        parse_document(Path("a.msg"), compound_file({"WordDocument": b"x" * 100}))


def test_msg_with_an_attached_image_goes_to_the_ocr_lane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from PIL import Image

    from almanac.core.documents import ocr_pending

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    png = io.BytesIO()
    Image.new("RGB", (64, 32), "white").save(png, "PNG")
    assert ocr_pending(Path("a.msg"), message(attachments=[("photo.png", png.getvalue())]))
    assert not ocr_pending(Path("a.msg"), message(attachments=[("notes.txt", b"text")]))
    assert not ocr_pending(Path("a.msg"), b"not a msg at all")
