"""One folder holding every hostile file beside good documents, indexed by the real CLI.

Each hostile file either fails with its own specific reason or is indexed as what it is; every
good document beside them is indexed; the whole ingest stays under the 1 GB memory target (the
kernel's count for the child process, which reads the files one at a time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hostile_cases import CASES, GOOD, Case, write_good
from hostile_run import Run, run_cli

from almanac.core.indexing.chunking import ChunkingConfig
from almanac.core.indexing.ingest import posix
from almanac.core.store.store import Store

MEMORY_TARGET = 2**30
CPU_BOUND = 600.0  # seconds of CPU for the whole folder: generous, it catches a runaway only


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Run, dict[str, Any]]:
    root = tmp_path_factory.mktemp("hostile")
    docs = root / "docs"
    docs.mkdir()
    write_good(docs)
    names = {case.name: case.build(docs) for case in CASES}
    kb = root / "kb"
    run = run_cli("ingest", str(docs), "--kb", str(kb), "--json", "-q")
    status = run_cli("status", "--kb", str(kb), "--json")
    assert status.returncode == 0, status.stderr
    files = {f["path"]: f for f in status.json()["files"]}
    return docs, kb, run, {"names": names, "files": files}


def test_the_ingest_succeeds_within_memory_and_time(indexed: Any) -> None:
    _docs, _kb, run, _ = indexed
    assert run.returncode == 0, run.stderr
    assert run.max_rss_bytes < MEMORY_TARGET, f"peak RSS {run.max_rss_bytes / 2**20:.0f} MiB"
    assert run.cpu_seconds < CPU_BOUND


def test_every_good_document_is_indexed(indexed: Any) -> None:
    docs, _kb, _run, found = indexed
    for name in GOOD:
        entry = found["files"][posix(docs / name)]
        assert entry["status"] == "indexed" and entry["chunks"] >= 1, entry


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_file_gets_its_own_outcome(indexed: Any, case: Case) -> None:
    docs, _kb, _run, found = indexed
    entry = found["files"][posix(docs / found["names"][case.name])]
    if case.error is None:
        assert entry["status"] == "indexed" and entry["chunks"] >= 1, entry
    else:
        assert entry["status"] == "error" and entry["chunks"] == 0, entry
        assert case.error in entry["error"], entry


def test_nothing_outside_the_folder_is_indexed(indexed: Any) -> None:
    docs, kb, _run, found = indexed
    assert all(p.startswith(posix(docs) + "/") for p in found["files"])
    store = Store.open_existing(kb)
    texts = " ".join(store.all_chunk_rows(["text"])["text"].to_pylist())
    assert "secret-token" not in texts


def test_no_chunk_is_longer_than_the_hard_cap(indexed: Any) -> None:
    docs, kb, _run, found = indexed
    store = Store.open_existing(kb)
    lengths = [len(t) for t in store.all_chunk_rows(["text"])["text"].to_pylist()]
    assert max(lengths) <= ChunkingConfig().max_chars
    # The giant word is all there, cut by size: 1,000,000 characters in capped chunks.
    word = store.chunks_of(posix(docs / found["names"]["giant word (1 MB)"]))
    assert sum(c.end - c.start for c in word) == 1_000_000


def test_utf16_without_bom_is_read_as_text(indexed: Any) -> None:
    docs, kb, _run, found = indexed
    store = Store.open_existing(kb)
    chunks = store.chunks_of(posix(docs / found["names"]["UTF-16 without BOM"]))
    assert "Quokka printer driver" in " ".join(c.text for c in chunks)


def test_text_output_never_carries_control_characters(indexed: Any) -> None:
    _docs, kb, _run, _ = indexed
    status = run_cli("status", "--kb", str(kb))
    search = run_cli("search", "toner cartridges cabinet", "--kb", str(kb), "-k", "3")
    for run in (status, search):
        assert run.returncode == 0, run.stderr
        assert "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "title\\x1b]0;pwned\\x07\\x1b[2J.md" in search.stdout  # shown, escaped
    assert "Toner cartridges \\x1b[31mare in cabinet B" in search.stdout


def test_a_non_utf8_name_is_found_and_shown(indexed: Any) -> None:
    _docs, kb, _run, _ = indexed
    run = run_cli("search", "espresso machine descales", "--kb", str(kb), "-k", "1")
    assert run.returncode == 0, run.stderr
    assert "caf\\xe9.md" in run.stdout.splitlines()[0]
