"""E-mail reader on messages built with the standard library: headings, quote de-duplication,
attachments read by their own readers (page by page, under their message), broken messages and
unreadable attachments in an mbox reported while the good ones stay."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import pytest

from almanac.core.documents import CorruptDocumentError, email_reader, ocr_pending, read_document

from pdfgen import build_pdf


def message(subject: str, sender: str, body: str, date: str = "Mon, 02 Mar 2026 09:15:00 +0000"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Date"] = date
    msg.set_content(body)
    return msg


def xlsx_bytes() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Codes"
    sheet.append(["Code", "Meaning"])
    sheet.append(["E42", "Fan blocked by dust"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_eml_heading_metadata_and_attachment(tmp_path: Path):
    msg = message(
        "TR-7 keeps rebooting", "Ana Diaz <ana@example.com>", "It reboots every night at 3."
    )
    msg.add_attachment(
        xlsx_bytes(),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename="codes.xlsx",
    )
    msg.add_attachment(b"\x89PNG not read here", maintype="image", subtype="png", filename="x.png")
    path = tmp_path / "ticket.eml"
    path.write_bytes(bytes(msg))
    doc = read_document(path)
    heading = doc.sections[0].heading_path[0]
    assert heading == "TR-7 keeps rebooting — Ana Diaz <ana@example.com> — 2026-03-02 09:15"
    assert "From: Ana Diaz <ana@example.com> | To: support@example.com" in doc.sections[0].text
    assert "reboots every night" in doc.sections[0].text
    attached = [s for s in doc.sections if s.heading_path[1:2] == ("Attachment: codes.xlsx",)]
    assert attached and "Code: E42; Meaning: Fan blocked by dust" in attached[0].text
    assert attached[0].heading_path[0] == heading  # under its message
    for s in doc.sections:
        assert doc.pages[0][s.start : s.end] == s.text


def test_mbox_quotes_deduplicated_and_broken_message_reported(tmp_path: Path):
    first = message("Fan noise", "ana@example.com", "The fan on my TR-7 is loud since Monday.")
    reply = message(
        "Re: Fan noise",
        "support@example.com",
        "Please clean the air vent; error E42 means dust.\n\n"
        "On Mon, Ana wrote:\n> The fan on my TR-7 is loud\n> since Monday.\n",
    )
    outside = message(
        "Re: Old case",
        "bob@example.com",
        "Thanks!\n\nOn Sun, Carl wrote:\n> Firmware 2.1 fixes the Wi-Fi drop.\n",
    )
    broken = (
        b"From: x@example.com\nSubject: broken\nContent-Type: text/plain\n"
        b"Content-Transfer-Encoding: base64\n\n@@@@ not base64 !!!\n"
    )
    parts = [bytes(first), bytes(reply), broken, bytes(outside)]
    mbox = b"".join(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + p + b"\n" for p in parts)
    path = tmp_path / "support.mbox"
    path.write_bytes(mbox)
    doc = read_document(path)
    text = doc.pages[0]
    assert text.count("is loud") == 1  # the quote of a message the file holds is dropped
    assert "Firmware 2.1 fixes the Wi-Fi drop" in text  # a quote of a message it lacks is kept
    headings = [s.heading_path[0] for s in doc.sections]
    assert len(headings) == 3 and headings[1].startswith("Re: Fan noise — support@example.com")
    assert doc.warnings and "message 3: its base64 body is damaged" in doc.warnings[0]


def test_mbox_all_broken_or_not_mbox(tmp_path: Path):
    path = tmp_path / "junk.mbox"
    path.write_bytes(b"From nobody\nnot a header line at all\n\njust text\n")
    with pytest.raises(CorruptDocumentError, match="no readable message: message 1"):
        read_document(path)
    path.write_bytes(b"hello, this is not an mbox\n")
    with pytest.raises(CorruptDocumentError, match="not an mbox"):
        read_document(path)
    empty_body = tmp_path / "blank.eml"
    empty_body.write_bytes(b"\n\n")
    with pytest.raises(CorruptDocumentError, match="no e-mail headers"):
        read_document(empty_body)


def docx_bytes(heading: str, text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def attach_pdf(msg: EmailMessage, data: bytes, name: str) -> None:
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)


def test_attachments_keep_their_own_pages_and_headings(tmp_path: Path):
    msg = message("Invoice question", "ana@example.com", "See the attached invoice.")
    attach_pdf(msg, build_pdf([["Invoice 2026-031."], ["Late fee: 4 percent a month."]]), "inv.pdf")
    msg.add_attachment(
        docx_bytes("Payment terms", "Pay within 30 days."),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="C:\\Users\\ana\\terms.docx",  # a client's folder is not part of the name
    )
    path = tmp_path / "thread.eml"
    path.write_bytes(bytes(msg))
    doc = read_document(path)
    heading = doc.sections[0].heading_path[0]
    by_text = {s.text: s for s in doc.sections}
    fee = by_text["Late fee: 4 percent a month."]
    assert fee.heading_path == (heading, "Attachment: inv.pdf, page 2") and fee.page is None
    assert by_text["Invoice 2026-031."].heading_path[1] == "Attachment: inv.pdf, page 1"
    terms = by_text["Pay within 30 days."]
    assert terms.heading_path == (heading, "Attachment: terms.docx", "Payment terms")
    for s in doc.sections:
        assert doc.pages[0][s.start : s.end] == s.text
    assert not doc.warnings


def test_mbox_unreadable_attachments_reported_by_name(tmp_path: Path):
    first = message("Contract", "ana@example.com", "The contract is attached.")
    attach_pdf(first, b"%PDF-1.4 this is not really a pdf", "contract.pdf")
    attach_pdf(first, build_pdf([["Locked text."]], encrypt=True), "locked.pdf")
    attach_pdf(first, build_pdf([["Annex: the warranty lasts 3 years."]]), "annex.pdf")
    second = message("Price list", "bob@example.com", "Prices for 2026.")
    attach_pdf(second, build_pdf([["Model TR-7 costs 240 euros."]]), "prices.pdf")
    damaged = message("Damaged", "carl@example.com", "Report attached.")
    damaged.add_attachment(b"x" * 300, maintype="text", subtype="plain", filename="report.txt")
    raw = bytes(damaged)
    # Damage the attachment's base64 only: the message's own text is still read.
    body_at = raw.index(b'filename="report.txt"')
    blank = raw.index(b"\n\n", body_at) + 2
    raw = raw[:blank] + b"@@@@!!!!" + raw[blank + 8 :]
    parts = [bytes(first), bytes(second), raw]
    mbox = b"".join(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + p + b"\n" for p in parts)
    path = tmp_path / "support.mbox"
    path.write_bytes(mbox)
    doc = read_document(path)
    text = doc.pages[0]
    assert "The contract is attached." in text and "Report attached." in text
    assert "the warranty lasts 3 years" in text and "TR-7 costs 240 euros" in text
    [warning] = doc.warnings
    assert warning.startswith("3 attachment(s) not read: ")
    assert "message 1, contract.pdf: not a valid PDF file" in warning
    assert "message 1, locked.pdf: PDF is password-protected" in warning
    assert "message 3, report.txt: its base64 body is damaged" in warning
    headings = {s.heading_path[1] for s in doc.sections if len(s.heading_path) > 1}
    assert headings == {"Attachment: annex.pdf, page 1", "Attachment: prices.pdf, page 1"}


def test_attachment_size_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(email_reader, "MAX_ATTACHMENT_BYTES", 1000)
    msg = message("Big", "ana@example.com", "A big file.")
    msg.add_attachment(b"word " * 1000, maintype="text", subtype="plain", filename="big.txt")
    path = tmp_path / "big.eml"
    path.write_bytes(bytes(msg))
    doc = read_document(path)
    assert "A big file." in doc.pages[0] and "word word" not in doc.pages[0]
    assert "big.txt: attachment too large" in doc.warnings[0]


def test_image_attachment_goes_to_the_ocr_lane(tmp_path: Path):
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(picture, format="PNG")
    plain = message("No scans", "ana@example.com", "Nothing to OCR.")
    attach_pdf(plain, build_pdf([["A text PDF."]]), "text.pdf")
    assert not ocr_pending(Path("plain.eml"), bytes(plain))
    scanned = message("A scan", "ana@example.com", "Photo of the receipt.")
    scanned.add_attachment(
        picture.getvalue(), maintype="image", subtype="png", filename="receipt.png"
    )
    assert ocr_pending(Path("scan.eml"), bytes(scanned))
    inline = message("Logo", "ana@example.com", "Signature logo only.")
    inline.add_attachment(
        picture.getvalue(),
        maintype="image",
        subtype="png",
        filename="logo.png",
        disposition="inline",
    )
    assert not ocr_pending(Path("logo.eml"), bytes(inline))
