"""A full disk under the knowledge base: said in words, and recovered from once space is back.

The knowledge base lives on a small tmpfs mounted for the test (root only); the documents do not.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from almanac.core.indexing.chunking import Chunker
from almanac.core.indexing.ingest import Ingestor, posix
from almanac.core.indexing.sync import FolderSync
from almanac.core.retrieval.retrieval import Searcher
from almanac.core.store.store import DiskFullError, Store
from almanac.core.system.discovery import walk

DEADLINE = 180.0  # retries back off to a minute between tries


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root to mount")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def free_space(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=128m", str(mount)], check=True)


def many_documents(docs: Path, count: int = 60) -> None:
    for i in range(count):
        (docs / f"doc-{i:02d}.md").write_text(
            f"# Doc {i}\n\n" + f"Topic {i}: the warehouse scanner model {i} needs firmware. " * 300,
            encoding="utf-8",
        )


def make_ingestor(kb_dir: Path, embedder) -> tuple[Store, Ingestor]:
    store = Store(kb_dir, dim=embedder.dim, embedder_name=embedder.name)
    return store, Ingestor(store, embedder, Chunker(embedder.count_tokens))


def test_a_full_disk_is_said_in_words_and_the_next_ingest_recovers(
    small_disk: Path, docs: Path, embedder
) -> None:
    many_documents(docs)
    store, ingestor = make_ingestor(small_disk / "kb", embedder)
    with pytest.raises(DiskFullError, match=r"^disk full: no space left") as failure:
        ingestor.ingest([docs])
    assert "LanceError" not in str(failure.value)
    free_space(small_disk)
    report = ingestor.ingest([docs])
    assert not report.failed
    assert set(store.documents()) == {posix(f.path) for f in walk(docs)}
    assert store.text_search("firmware scanner", 3)  # the full-text index was built
    hits = Searcher(store, embedder).search("warehouse scanner model 7 firmware", 3).hits
    assert hits and hits[0].path == posix(docs / "doc-07.md")


def test_watch_on_a_full_disk_reports_it_once_and_recovers_by_itself(
    small_disk: Path, docs: Path, embedder
) -> None:
    many_documents(docs)
    store, ingestor = make_ingestor(small_disk / "kb", embedder)
    errors: list[str] = []
    sync = FolderSync(ingestor, [docs], quiet_period=0.2, on_error=errors.append)
    sync.start()
    try:
        wait_for(lambda: any("disk full" in e for e in errors), "the full disk to be reported")
        free_space(small_disk)
        wait_for(
            lambda: set(store.documents()) == {posix(f.path) for f in walk(docs)},
            "the index to mirror the folder once space is back",
        )
        assert sync.wait_idle(DEADLINE)
        assert store.text_search("firmware scanner", 3)  # the full-text index is back too
        assert len([e for e in errors if e]) == 1, errors  # once, not at every retry
        assert errors[-1] == ""  # recovery announced
    finally:
        assert sync.stop(timeout=10)
