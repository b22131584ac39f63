"""kill -9 in the middle of an ingest: the index stays consistent and a restart finishes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from almanac.core.store.store import Store

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


def test_metadata_marks_a_knowledge_base_only_once_its_tables_exist(
    tmp_path: Path, monkeypatch
) -> None:
    # Another process (status, the test above) treats the metadata file as "a knowledge base is
    # here" and opens its tables: they must already exist when it appears.
    import lancedb

    from almanac.core.store import store as store_module

    original = store_module._write_meta
    seen: list[set[str]] = []

    def checked_write(kb_dir: Path, meta: dict) -> None:
        result = lancedb.connect(str(kb_dir / "lancedb")).list_tables()
        seen.append(set(getattr(result, "tables", result)))
        original(kb_dir, meta)

    monkeypatch.setattr(store_module, "_write_meta", checked_write)
    kb = tmp_path / "kb"
    Store(kb, dim=8, embedder_name="test")
    assert seen and seen[0] >= {"documents", "chunks"}, seen
    reopened = Store.open_existing(kb)
    assert reopened.dim == 8 and reopened.count_chunks() == 0
