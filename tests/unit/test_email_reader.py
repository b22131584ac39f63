"""E-mail reader on messages built with the standard library: headings, quote de-duplication,
attachments read by their own readers, broken messages in an mbox reported while good ones stay."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import pytest

from almanac.core.documents import CorruptDocumentError, read_document


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
    attached = [s for s in doc.sections if s.heading_path[-1] == "Attachment: codes.xlsx"]
    assert attached and "Code: E42; Meaning: Fan blocked by dust" in attached[0].text
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
