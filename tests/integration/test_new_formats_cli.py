"""Slides, spreadsheets, e-mail and scans through the real CLI: good files indexed and cited with
their page / sheet row / message, bad ones each with a specific error in ``almanac status``."""

from __future__ import annotations

import io
import json
import zipfile
from email.message import EmailMessage
from pathlib import Path

from PIL import Image

from almanac.core.documents.archive import OLE_MAGIC
from clirun import cli
from ocrgen import image_pdf, render_lines


def xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Compatibility"
    sheet.append(["Router", "Works with"])
    sheet.append(["TR-7", "Hearthly thermostat T3"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    deck.slides.add_slide(deck.slide_layouts[5]).shapes.title.text = "Welcome"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Escalation rules"
    slide.placeholders[1].text_frame.text = "Escalate outages longer than four hours to tier two."
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def message(subject: str, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "ops@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 03 Mar 2026 10:00:00 +0000"
    msg.set_content(body)
    return bytes(msg)


def test_new_formats_indexed_and_bad_ones_reported(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "compat.xlsx").write_bytes(xlsx())
    (docs / "training.pptx").write_bytes(pptx())
    good = message("Refund window", "Refunds are possible within 45 days of delivery.")
    broken = b"Subject: broken\nContent-Transfer-Encoding: base64\n\n@@@ not base64\n"
    (docs / "support.mbox").write_bytes(
        b"".join(b"From x Mon Jan 1 00:00:00 2026\n" + m + b"\n" for m in (good, broken))
    )
    scan = render_lines(["Firmware 4.2 fixes the pairing bug."], width=1000, height=400)
    (docs / "scan.pdf").write_bytes(image_pdf([scan], dpi=100))
    # bad input
    (docs / "locked.xlsx").write_bytes(
        OLE_MAGIC + b"\0" * 64 + "EncryptedPackage".encode("utf-16-le")
    )
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    (docs / "corrupt.pptx").write_bytes(damaged.getvalue())
    Image.new("RGB", (300, 200), "white").save(docs / "blank.png")

    cache, kb = tmp_path / "cache", tmp_path / "kb"
    run = cli("ingest", str(docs), "--kb", str(kb), "--json", "-q", cache=cache)
    assert run.returncode == 0, run.stderr
    status = json.loads(cli("status", "--kb", str(kb), "--json", cache=cache).stdout)
    files = {Path(f["path"]).name: f for f in status["files"]}
    assert "password-protected" in files["locked.xlsx"]["error"]
    assert "not a valid PPTX" in files["corrupt.pptx"]["error"]
    assert "no text found in this image" in files["blank.png"]["error"]
    assert files["support.mbox"]["status"] == "indexed"
    assert "message 2: its base64 body is damaged" in files["support.mbox"]["error"]
    for name in ("compat.xlsx", "training.pptx", "support.mbox", "scan.pdf"):
        assert files[name]["status"] == "indexed" and files[name]["chunks"] >= 1, files[name]

    def top(query: str) -> dict:
        out = cli("search", query, "--kb", str(kb), "--json", "-k", "1", cache=cache)
        return json.loads(out.stdout)["hits"][0]

    hit = top("which thermostat works with the TR-7 router")
    assert hit["path"].endswith("compat.xlsx") and "Row 2: Router: TR-7" in hit["text"]
    assert hit["heading"] == "Sheet: Compatibility"
    hit = top("when to escalate an outage to tier two")
    assert hit["path"].endswith("training.pptx") and hit["page"] == 2
    assert hit["heading"] == "Escalation rules"
    hit = top("how many days for a refund")
    assert hit["path"].endswith("support.mbox") and hit["heading"].startswith("Refund window")
    hit = top("which firmware fixes the pairing bug")
    assert hit["path"].endswith("scan.pdf") and hit["page"] == 1
    assert hit["heading"].endswith("text read by OCR")
