"""kill -9 in the middle of an ingest: the index stays consistent and a restart finishes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from almanac.core.store import Store

from kbcheck import assert_consistent

N_FILES = 300


def _make_folder(root: Path) -> Path:
    root.mkdir()
    for i in range(N_FILES):
        paragraphs = [
            f"Record {i} part {p}: the customer account number {i:05d} uses plan {p} and "
            f"was migrated to the new billing system. Notes for part {p} of record {i}."
            for p in range(6)
        ]
        (root / f"record-{i:04d}.md").write_text(f"# Record {i}\n\n" + "\n\n".join(paragraphs))
    return root


def _ingest(folder: Path, kb: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "almanac", "ingest", str(folder), "--kb", str(kb), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_mid_ingest_then_restart(tmp_path: Path) -> None:
    folder = _make_folder(tmp_path / "docs")
    kb = tmp_path / "kb"
    proc = _ingest(folder, kb)
    deadline = time.monotonic() + 240
    indexed = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (kb / "almanac-kb.json").exists():
                indexed = len(Store.open_existing(kb).documents())
                if indexed > 0:
                    break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "ingest finished before it could be killed"
    assert 0 < indexed < N_FILES

    store = Store.open_existing(kb)
    assert_consistent(store)
    partial = len(store.documents())
    assert partial < N_FILES

    rerun = _ingest(folder, kb)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert f"unchanged {partial}" in out or partial == 0, out  # finished work isn't redone

    store = Store.open_existing(kb)
    assert_consistent(store)
    docs = store.documents()
    assert len(docs) == N_FILES
    assert all(d.status.value == "indexed" and d.chunk_count > 0 for d in docs.values())
