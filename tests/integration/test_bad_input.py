"""Every kind of bad input gets a specific per-file error; the rest of the folder is indexed.

Runs the real CLI in a subprocess. As root, file permissions don't stop reads, so the run drops
root's DAC-override capabilities (setpriv) to make the unreadable file really unreadable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pdfgen import build_pdf

GOOD_MD = "# Shipping\n\nParcels to Norway take five working days with the standard courier.\n"


def _cli(*args: str, drop_root_read: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "almanac", *args]
    if drop_root_read:
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "corrupt.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf\x00\x01")
    (root / "locked.pdf").write_bytes(build_pdf([["Secret salary table."]], encrypt=True))
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (root / "mostly-utf8.txt").write_bytes(
        "Garantie: réclamations avec le numéro de série. ".encode() * 20
        + b"\x81\x8d\xc3"
        + b" Fin."
    )
    with open(root / "huge.txt", "wb") as f:  # 200 MB of real text
        line = b"This line repeats to make a very large plain text file.\n"
        f.write(line * (200 * 1024 * 1024 // len(line) + 1))
    unreadable = root / "unreadable.md"
    unreadable.write_text("# Hidden\n\nYou cannot read this.", encoding="utf-8")
    unreadable.chmod(0)
    os.symlink("loop-b.txt", root / "loop-a.txt")
    os.symlink("loop-a.txt", root / "loop-b.txt")
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a folder loop
    unicode_dir = root / "Ünïcödé folder"
    unicode_dir.mkdir()
    (unicode_dir / "Hé llo wörld.md").write_text(
        "# Café\n\nThe café opens at seven o'clock on weekdays.", encoding="utf-8"
    )
    (root / "picture.xyz").write_bytes(b"\x89PNG not supported")
    (root / "good.md").write_text(GOOD_MD, encoding="utf-8")
    return root


@pytest.mark.skipif(
    shutil.which("setpriv") is None and os.geteuid() == 0, reason="needs setpriv as root"
)
def test_bad_inputs_are_reported_and_the_rest_is_indexed(bad_folder: Path, tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    run = _cli(
        "ingest", str(bad_folder), "--kb", str(kb), "--json", "-q", drop_root_read=os.geteuid() == 0
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["added"] >= 3

    status = _cli("status", "--kb", str(kb), "--json")
    assert status.returncode == 0, status.stderr
    files = {
        Path(f["path"]).relative_to(bad_folder).as_posix(): f
        for f in json.loads(status.stdout)["files"]
    }

    def error(name: str) -> str:
        entry = files[name]
        assert entry["status"] == "error", (name, entry)
        assert entry["chunks"] == 0
        return str(entry["error"])

    assert "not a valid PDF" in error("corrupt.pdf")
    assert "password-protected" in error("locked.pdf")
    assert "empty file" in error("empty.txt")
    assert "binary data" in error("binary.txt")
    assert "too large" in error("huge.txt")
    assert "permission denied" in error("unreadable.md").lower()
    assert "symbolic link loop" in error("loop-a.txt")
    assert "symbolic link loop" in error("loop-b.txt")
    assert "symbolic link loop" in error("sub/up")
    assert "unsupported file type .xyz" in error("picture.xyz")

    # Indexed despite their neighbours: plain, unicode path, and text with a few bad bytes.
    for name in ("good.md", "Ünïcödé folder/Hé llo wörld.md", "mostly-utf8.txt"):
        assert files[name]["status"] == "indexed", files[name]
        assert files[name]["chunks"] >= 1
    assert "undecodable" in (files["mostly-utf8.txt"]["error"] or "")

    search = _cli("search", "when does the café open", "--kb", str(kb), "--json")
    hits = json.loads(search.stdout)["hits"]
    assert hits and hits[0]["path"].endswith("Hé llo wörld.md")
    assert "seven o'clock" in hits[0]["text"]

    # Human-readable status lists every error with its reason.
    text_status = _cli("status", "--kb", str(kb))
    assert "error:" in text_status.stdout and "password-protected" in text_status.stdout


def test_scans_have_a_larger_size_limit_than_other_files(tmp_path: Path, embedder) -> None:
    """A 100-page manual scanned at 300 dpi is ~90 MB, over the 64 MiB every other document
    keeps: page-image types (PDF, TIFF) have their own limit, the rest still the small one."""
    from almanac.core.documents import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_SCAN_BYTES
    from almanac.core.indexing.chunking import Chunker, ChunkingConfig
    from almanac.core.indexing.ingest import Ingestor
    from almanac.core.records import DocumentStatus
    from almanac.core.store.store import Store

    assert DEFAULT_MAX_SCAN_BYTES >= 4 * DEFAULT_MAX_FILE_BYTES  # a 100-page scan fits
    docs = tmp_path / "docs"
    docs.mkdir()
    lines = [f"Line {n} of the long heron manual, padded to fill the page." for n in range(40)]
    pdf = build_pdf([lines] * 60)  # ~ 150 KB
    (docs / "long.pdf").write_bytes(pdf)
    (docs / "long.txt").write_text("heron notes " * (len(pdf) // 12 + 1), encoding="utf-8")
    (docs / "huge.pdf").write_bytes(pdf + b"\n%" + b"x" * len(pdf) * 2)
    store = Store(tmp_path / "kb", dim=embedder.dim, embedder_name=embedder.name)
    ingestor = Ingestor(
        store,
        embedder,
        Chunker(embedder.count_tokens, ChunkingConfig()),
        max_file_bytes=len(pdf) // 2,
        max_scan_bytes=len(pdf) * 2,
    )
    ingestor.ingest([docs])
    found = {Path(p).name: d for p, d in store.documents().items()}
    assert found["long.pdf"].status is DocumentStatus.INDEXED
    assert found["long.txt"].status is DocumentStatus.ERROR
    assert "too large" in found["long.txt"].error
    assert found["huge.pdf"].status is DocumentStatus.ERROR
    assert "too large" in found["huge.pdf"].error
