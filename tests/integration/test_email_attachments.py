"""E-mail attachments through the real ingest and search: a fact only an attached PDF holds is
found and cited by message, attachment and the attachment's page; an unreadable attachment is
named in the mail's status while the rest is indexed; removing the mail removes its attachments."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

from almanac.core.answering.citations import citation_location
from almanac.core.records import DocumentStatus

from pdfgen import build_pdf


def thread_mail() -> bytes:
    import docx

    msg = EmailMessage()
    msg["From"] = "Ana Diaz <ana@example.com>"
    msg["To"] = "billing@example.com"
    msg["Subject"] = "Invoice for the TR-7 repair"
    msg["Date"] = "Mon, 02 Mar 2026 09:15:00 +0000"
    msg.set_content("Hello, the invoice and our terms are attached.")
    pdf = build_pdf(
        [
            ["Invoice 2026-031 for the repair of one TR-7 heat pump."],
            ["The ferry crossing surcharge to Lindholm island is 83 euros."],
        ]
    )
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    document = docx.Document()
    document.add_heading("Payment terms", level=1)
    document.add_paragraph("Invoices are payable by bank transfer within 30 days.")
    out = io.BytesIO()
    document.save(out)
    msg.add_attachment(
        out.getvalue(),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="terms.docx",
    )
    return bytes(msg)


def test_attachment_fact_cited_by_message_attachment_and_page(kb, tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    mail = folder / "support-thread.eml"
    mail.write_bytes(thread_mail())
    report = kb.ingestor.ingest([folder])
    assert report.added == 1 and not report.failed
    info = kb.store.document(str(mail))
    assert info is not None and info.status == DocumentStatus.INDEXED and not info.error

    hit = kb.searcher.search("ferry surcharge to Lindholm island", 3).hits[0]
    assert "83 euros" in hit.text and hit.path == str(mail)
    location = citation_location(hit.path, hit.page, hit.heading, dash=" — ")
    assert location == (
        "support-thread.eml — Invoice for the TR-7 repair — Ana Diaz <ana@example.com> — "
        "2026-03-02 09:15 > Attachment: invoice.pdf, page 2"
    )
    terms = kb.searcher.search("payable by bank transfer", 3).hits[0]
    assert terms.heading.endswith("> Attachment: terms.docx > Payment terms")

    assert kb.ingestor.remove([mail]) == 1
    assert kb.store.documents() == {} and kb.store.count_chunks() == 0
    hits = kb.searcher.search("ferry surcharge to Lindholm island", 3, floor=-1).hits
    assert all("Lindholm" not in h.text for h in hits)


def test_mbox_with_a_corrupt_attachment_indexes_the_rest(kb, tmp_path: Path) -> None:
    def message(subject: str, body: str, attachments: dict[str, bytes]) -> bytes:
        msg = EmailMessage()
        msg["From"] = "support@example.com"
        msg["Subject"] = subject
        msg.set_content(body)
        for name, data in attachments.items():
            msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
        return bytes(msg)

    parts = [
        message(
            "Warranty",
            "Our warranty terms, and a damaged scan.",
            {
                "broken.pdf": b"%PDF-1.7\nnot a real pdf body",
                "warranty.pdf": build_pdf([["The kayak hull warranty lasts seven years."]]),
            },
        ),
        message("Opening hours", "The workshop opens at 7 on Saturdays.", {}),
    ]
    folder = tmp_path / "mail"
    folder.mkdir()
    box = folder / "support.mbox"
    box.write_bytes(b"".join(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + p for p in parts))
    kb.ingestor.ingest([folder])
    info = kb.store.document(str(box))
    assert info is not None and info.status == DocumentStatus.INDEXED
    assert info.error.startswith("1 attachment(s) not read: message 1, broken.pdf: not a valid PDF")
    hit = kb.searcher.search("kayak hull warranty", 3).hits[0]
    assert "seven years" in hit.text and hit.heading.endswith("> Attachment: warranty.pdf, page 1")
    assert "Saturdays" in kb.searcher.search("workshop opening Saturday", 3).hits[0].text
