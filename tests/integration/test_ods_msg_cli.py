"""ODS spreadsheets and Outlook .msg e-mails through the real CLI: indexed and cited with their
sheet row / message heading; a hidden sheet is not indexed; a corrupt .ods and a corrupt .msg each
get a specific error in ``almanac status`` while the other files index."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from clirun import cli
from msggen import outlook_message
from odsgen import support_workbook


def test_ods_and_msg_indexed_and_bad_ones_reported(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "compat.ods").write_bytes(support_workbook())
    mail = outlook_message(
        subject="Refund window for returns",
        sender_name="Dana Ops",
        sender_email="dana@example.com",
        to="Help Desk",
        sent=dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.UTC),
        body="Refunds are possible within 45 days of delivery.\r\n",
    )
    (docs / "refund.msg").write_bytes(mail)
    (docs / "broken.msg").write_bytes(mail[:2000])
    (docs / "broken.ods").write_bytes(b"PK\x03\x04" + b"\0" * 200)

    cache, kb = tmp_path / "cache", tmp_path / "kb"
    run = cli("ingest", str(docs), "--kb", str(kb), "--json", "-q", cache=cache)
    assert run.returncode == 0, run.stderr
    status = json.loads(cli("status", "--kb", str(kb), "--json", cache=cache).stdout)
    files = {Path(f["path"]).name: f for f in status["files"]}
    assert files["broken.msg"]["status"] == "error"
    assert "Outlook .msg file is damaged" in files["broken.msg"]["error"]
    assert files["broken.ods"]["status"] == "error"
    assert "not a valid ODS file" in files["broken.ods"]["error"]
    for name in ("compat.ods", "refund.msg"):
        assert files[name]["status"] == "indexed" and files[name]["chunks"] >= 1, files[name]
    assert files["compat.ods"]["error"] == "hidden sheet(s) skipped: Scratch"

    def hits(query: str, k: int = 1) -> list[dict[str, object]]:
        out = cli("search", query, "--kb", str(kb), "--json", "-k", str(k), cache=cache)
        found: list[dict[str, object]] = json.loads(out.stdout)["hits"]
        return found

    hit = hits("which thermostat works with the TR-7 router")[0]
    assert str(hit["path"]).endswith("compat.ods") and "Row 2: Router: TR-7" in str(hit["text"])
    assert hit["heading"] == "Sheet: Compatibility"
    hit = hits("how many days for a refund")[0]
    assert str(hit["path"]).endswith("refund.msg")
    heading = "Refund window for returns — Dana Ops <dana@example.com> — 2026-03-03 10:00"
    assert hit["heading"] == heading
    # the hidden sheet's text is nowhere in the index
    assert not any(
        "secret internal markup" in str(h["text"]) for h in hits("internal markup", k=10)
    )
