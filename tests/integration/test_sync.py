"""Live folder sync end to end: real files, real observers (inotify / polling), a real store.

Every scenario waits until the index reflects the folder and then checks that the index holds
exactly what the folder holds: no stale chunks, no duplicates, no missing documents.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from almanac.core.indexing.ingest import posix
from almanac.core.indexing.sync import FolderSync, SyncState
from almanac.core.records import DocumentStatus
from almanac.core.store.store import Store
from almanac.core.system.discovery import walk
from inotify_queue import can_shrink, tiny_queue

from kbcheck import assert_consistent

WAIT = 15.0


def wait_for(condition: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")


def key(path: Path) -> str:
    return posix(path)


def folder_keys(folder: Path) -> set[str]:
    return {key(f.path) for f in walk(folder)}


def mirrors(store: Store, folder: Path) -> bool:
    return set(store.documents()) == folder_keys(folder)


def settle(store: Store, folder: Path, sync: FolderSync | None = None) -> None:
    """Wait until the index equals the folder, then prove it is a clean copy of it."""
    wait_for(lambda: mirrors(store, folder), what="the index to mirror the folder")
    if sync is not None:
        assert sync.wait_idle(WAIT)
    assert set(store.documents()) == folder_keys(folder)
    assert_consistent(store)
    for path, info in store.documents().items():
        if info.status is DocumentStatus.INDEXED:
            # No stale text: every chunk is a span of what the file holds now.
            on_disk = Path(path).read_text(encoding="utf-8")
            assert all(c.text.strip() in on_disk for c in store.chunks_of(path)), path


def doc_text(store: Store, path: Path) -> str:
    return " ".join(c.text for c in store.chunks_of(key(path)))


def top_text(kb, query: str) -> str:
    result = kb.searcher.search(query, k=1)
    return result.hits[0].text if result.hits else ""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


@pytest.fixture
def live(kb, docs: Path) -> Iterator[FolderSync]:
    sync = FolderSync(kb.ingestor, [docs], quiet_period=0.2)
    sync.start()
    assert sync.wait_idle(WAIT)
    yield sync
    sync.stop()


def test_create_edit_append_truncate_delete(kb, docs: Path, live: FolderSync) -> None:
    doc = docs / "guide.md"
    doc.write_text("# Zebra\nThe zebra relay listens on port 4242.\n", encoding="utf-8")
    wait_for(lambda: "4242" in top_text(kb, "zebra relay port"), what="create")
    settle(kb.store, docs, live)

    doc.write_text("# Giraffe\nThe giraffe relay listens on port 5151.\n", encoding="utf-8")
    wait_for(lambda: "5151" in doc_text(kb.store, doc), what="edit")
    assert "4242" not in doc_text(kb.store, doc)
    assert "5151" in top_text(kb, "giraffe relay port")
    settle(kb.store, docs, live)

    with doc.open("a", encoding="utf-8") as f:
        f.write("\n## Backup\nNightly backups run at 02:30 from the okapi server.\n")
    wait_for(lambda: "okapi" in doc_text(kb.store, doc), what="append")
    assert "5151" in doc_text(kb.store, doc)
    settle(kb.store, docs, live)

    doc.write_text("# Giraffe\nShort now.\n", encoding="utf-8")
    wait_for(lambda: "okapi" not in doc_text(kb.store, doc), what="truncate")
    assert "Short now" in doc_text(kb.store, doc)
    settle(kb.store, docs, live)

    doc.unlink()
    wait_for(lambda: kb.store.documents() == {}, what="delete")
    settle(kb.store, docs, live)
    assert kb.store.count_chunks() == 0
    assert live.state.last_error == ""


def test_rename_reuses_vectors(kb, docs: Path, live: FolderSync) -> None:
    (docs / "old-name.md").write_text("# Ports\nLAN sync uses port 47310.\n", encoding="utf-8")
    settle(kb.store, docs, live)
    embedded = live.stats.chunks_embedded
    os.rename(docs / "old-name.md", docs / "new-name.md")
    wait_for(lambda: set(kb.store.documents()) == {key(docs / "new-name.md")}, what="rename")
    settle(kb.store, docs, live)
    assert live.stats.chunks_embedded == embedded, "a rename must not re-embed anything"
    assert top_text(kb, "LAN sync port") and "47310" in doc_text(kb.store, docs / "new-name.md")


def test_move_out_and_in(kb, docs: Path, tmp_path: Path, live: FolderSync) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (docs / "leaving.md").write_text("Leaving the folder soon.\n", encoding="utf-8")
    (outside / "arriving.md").write_text("Arriving from elsewhere: the ibex note.\n", "utf-8")
    settle(kb.store, docs, live)

    shutil.move(docs / "leaving.md", outside / "leaving.md")
    wait_for(lambda: kb.store.documents() == {}, what="move out")
    shutil.move(outside / "arriving.md", docs / "arriving.md")
    wait_for(lambda: key(docs / "arriving.md") in kb.store.documents(), what="move in")
    settle(kb.store, docs, live)
    assert "ibex" in top_text(kb, "ibex note")


def test_folder_rename_and_delete(kb, docs: Path, live: FolderSync) -> None:
    sub = docs / "manuals" / "v1"
    sub.mkdir(parents=True)
    for i in range(5):
        (sub / f"page{i}.md").write_text(f"# Page {i}\nManual page {i} text.\n", "utf-8")
    (docs / "top.md").write_text("Top-level note.\n", encoding="utf-8")
    settle(kb.store, docs, live)
    embedded = live.stats.chunks_embedded

    os.rename(docs / "manuals", docs / "handbooks")
    wait_for(lambda: mirrors(kb.store, docs), what="folder rename")
    settle(kb.store, docs, live)
    assert len(kb.store.documents_under(key(docs / "handbooks"))) == 5
    assert live.stats.chunks_embedded == embedded, "a folder rename must not re-embed anything"

    shutil.rmtree(docs / "handbooks")
    wait_for(lambda: set(kb.store.documents()) == {key(docs / "top.md")}, what="folder delete")
    settle(kb.store, docs, live)


def test_atomic_save_is_one_update_without_a_gap(kb, docs: Path, live: FolderSync) -> None:
    doc = docs / "x.md"
    doc.write_text("# Version\nversion zero of the capybara guide.\n", encoding="utf-8")
    settle(kb.store, docs, live)
    removed_before = live.stats.removed

    missing: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            if kb.store.document(key(doc)) is None:
                missing.append(time.monotonic())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for version in range(1, 6):
            tmp = docs / "x.md.tmp"
            tmp.write_text(f"# Version\nversion {version} of the capybara guide.\n", "utf-8")
            os.replace(tmp, doc)
            # Each save applied on its own before the next one (not coalesced into one batch).
            wait_for(
                lambda v=version: f"version {v} " in doc_text(kb.store, doc),
                what=f"save {version}",
            )
    finally:
        sampling.set()
        sampler.join()
    assert not missing, "the document vanished from the index during an atomic save"
    assert live.stats.removed == removed_before
    settle(kb.store, docs, live)


def test_ignored_files_never_indexed_nor_deleted(kb, docs: Path, live: FolderSync) -> None:
    (docs / "report.md").write_text("The quarterly report.\n", encoding="utf-8")
    junk = ["~$report.docx", ".report.md.swp", "notes.swp", ".DS_Store", "dl.part", "a.tmp"]
    for name in junk:
        (docs / name).write_bytes(b"lock or swap data")
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "secret.md").write_text("hidden\n", encoding="utf-8")
    settle(kb.store, docs, live)
    assert set(kb.store.documents()) == {key(docs / "report.md")}
    for name in junk:
        (docs / name).unlink()
    # A barrier made of events, not of time: the observer reports events in order, so once a
    # file written after the deletions is indexed, every deletion event has been seen.
    barrier = docs / "barrier.md"
    barrier.write_text("Written after the deletions.\n", encoding="utf-8")
    wait_for(lambda: key(barrier) in kb.store.documents(), what="the barrier file")
    assert live.wait_idle(WAIT)
    assert set(kb.store.documents()) == {key(docs / "report.md"), key(barrier)}
    assert live.stats.removed == 0
    assert live.stats.files_submitted == 2  # report.md and the barrier: no junk, no delete


def test_file_changing_while_indexed_ends_at_its_final_text(
    kb, docs: Path, live: FolderSync
) -> None:
    doc = docs / "busy.md"
    # Edits spaced just above the quiet period, so batches run while the file keeps changing.
    for version in range(12):
        doc.write_text(f"# Busy\nrevision {version} of the heron log.\n", encoding="utf-8")
        time.sleep(0.25)
    wait_for(lambda: "revision 11" in doc_text(kb.store, doc), what="the final revision")
    settle(kb.store, docs, live)


def test_burst_of_2000_files_each_indexed_once(kb, docs: Path, live: FolderSync) -> None:
    for i in range(2000):
        (docs / f"f{i:04d}.md").write_text(f"note {i} token{i}\n", encoding="utf-8")
    wait_for(lambda: len(kb.store.documents()) == 2000, timeout=120, what="2000 documents")
    settle(kb.store, docs, live)
    stats = live.stats
    assert stats.added == 2000 and stats.updated == 0, stats
    assert stats.files_submitted == 2000, stats  # no path was handed to the ingestor twice
    assert stats.chunks_embedded == stats.chunks_written == 2000, stats
    assert kb.store.count_chunks() == 2000


def test_polling_observer(kb, docs: Path) -> None:
    states: list[SyncState] = []
    sync = FolderSync(
        kb.ingestor, [docs], polling=True, polling_interval=0.3, on_state=states.append
    )
    with sync:
        doc = docs / "share.md"
        doc.write_text("The network share holds the pelican manual.\n", encoding="utf-8")
        wait_for(lambda: "pelican" in doc_text(kb.store, doc), what="polling create")
        doc.write_text("The network share holds the flamingo manual.\n", encoding="utf-8")
        wait_for(lambda: "flamingo" in doc_text(kb.store, doc), what="polling edit")
        settle(kb.store, docs, sync)
        doc.unlink()
        wait_for(lambda: kb.store.documents() == {}, what="polling delete")
        settle(kb.store, docs, sync)
    # Progress reached the callback: watching, work pending, files indexed, then stopped.
    assert any(s.watching and s.pending > 0 for s in states)
    assert any(s.indexing_total > 0 for s in states)
    assert states[-1].watching is False and states[-1].pending == 0
    assert states[-1].last_sync > 0 and states[-1].last_error == ""


def test_polling_sees_the_deletion_of_a_file_it_never_saw(kb, docs: Path) -> None:
    """A file indexed by the start-up reconciliation between two snapshots and deleted before
    the next one produces no event at all: it must still leave the index, not stay until the
    next start (found by the window's live-sync test failing under load)."""
    release = threading.Event()
    hold = kb.ingestor.writer.submit("hold", lambda _stop: release.wait(60))
    reconciled = threading.Event()
    sync = FolderSync(
        kb.ingestor,
        [docs],
        polling=True,
        polling_interval=2.0,
        on_batch=lambda result: result.reconcile and reconciled.set(),
    )
    with sync:
        # The observer's first snapshot is taken: the file is not in it. The reconciliation
        # waits for the writer until the file exists, so it indexes it.
        doc = docs / "ephemeral.md"
        doc.write_text("The ephemeral note mentions the quokka.\n", encoding="utf-8")
        release.set()
        hold.result()
        assert reconciled.wait(WAIT)
        doc.unlink()  # well before the poller's next snapshot, usually
        wait_for(lambda: kb.store.documents() == {}, timeout=60, what="the deletion")
        settle(kb.store, docs, sync)
    assert sync.stats.reconciles == 1


def test_startup_reconciles_changes_made_while_closed(kb, docs: Path) -> None:
    for i in range(4):
        (docs / f"d{i}.md").write_text(f"document {i} about walruses.\n", encoding="utf-8")
    with FolderSync(kb.ingestor, [docs]) as sync:
        settle(kb.store, docs, sync)
    # Closed: edit one, delete one, rename one, add one.
    (docs / "d0.md").write_text("document 0 now about narwhals.\n", encoding="utf-8")
    (docs / "d1.md").unlink()
    os.rename(docs / "d2.md", docs / "renamed.md")
    (docs / "d9.md").write_text("a new one about puffins.\n", encoding="utf-8")
    with FolderSync(kb.ingestor, [docs]) as sync:
        settle(kb.store, docs, sync)
        assert "narwhals" in doc_text(kb.store, docs / "d0.md")
        # Only the edited and the new document's text is new; the rename reuses its vectors.
        assert sync.stats.chunks_embedded == 2


def _almanac_watch(folder: Path, kb_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "almanac", "watch", str(folder), "--kb", str(kb_dir), "--quiet"],
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def test_killed_mid_sync_then_restarted_reconciles(kb, docs: Path, tmp_path: Path) -> None:
    log = tmp_path / "watch1.log"
    proc = _almanac_watch(docs, kb.path, log)
    try:
        wait_for(lambda: "reconciled" in log.read_text(), timeout=120, what="almanac watch")
        for i in range(600):
            (docs / f"k{i:03d}.md").write_text(f"kill test note {i} word{i}\n", "utf-8")
        # Kill while it is busy: some of the burst indexed, not all of it.
        wait_for(lambda: len(kb.store.documents()) > 0, timeout=60, what="sync to begin")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    indexed_at_kill = len(kb.store.documents())
    # While nothing runs: more changes the restart must find.
    (docs / "k000.md").unlink()
    os.rename(docs / "k001.md", docs / "moved.md")

    log2 = tmp_path / "watch2.log"
    proc = _almanac_watch(docs, kb.path, log2)
    try:
        wait_for(lambda: "reconciled" in log2.read_text(), timeout=120, what="the restart")
        fresh = Store.open_existing(kb.path)
        settle(fresh, docs)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log2.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(Store.open_existing(kb.path).documents()) == 599
    assert 0 < indexed_at_kill < 600, "the kill was meant to land mid-sync"
    assert "reconciled: added" in log2.read_text()


@pytest.mark.skipif(
    not can_shrink(),
    reason="needs Linux inotify and root, to give the watcher a tiny event queue",
)
def test_changes_lost_in_an_inotify_overflow_are_found(kb, docs: Path) -> None:
    sync = FolderSync(kb.ingestor, [docs], quiet_period=0.2)
    try:
        # An inotify instance keeps the limit it was created with. watchdog creates it on its
        # own thread, some time after start(): the limit is restored once an event came through.
        with tiny_queue():
            sync.start()
            assert sync.wait_idle(WAIT)
            assert sync.stats.reconciles == 1  # the start-up one
            probe = docs / "probe.md"
            probe.write_text("# Probe\n\nThe watcher is up.\n", encoding="utf-8")
            wait_for(lambda: key(probe) in kb.store.documents(), what="the probe file")
        assert sync.wait_idle(WAIT)
        before = sync.stats.reconciles  # 1, or 2 if even the probe's few events overflowed
        for i in range(200):  # ~1,200 events into a queue of 8: most are dropped by the kernel
            (docs / f"note-{i:03d}.md").write_text(
                f"# Note {i}\n\nTicket {i:05d} was escalated to tier two.\n", encoding="utf-8"
            )
        settle(kb.store, docs, sync)
        assert sync.stats.reconciles > before  # the overflow happened, answered from the disk
        assert "Ticket 00137" in doc_text(kb.store, docs / "note-137.md")
    finally:
        sync.stop()


@pytest.mark.skipif(
    not can_shrink(),
    reason="needs Linux inotify and root, to give the watcher a small event queue",
)
def test_a_rescan_does_not_overflow_the_event_queue_by_itself(kb, docs: Path) -> None:
    """A reconciliation opens and reads every file. If those opens and closes reached the kernel
    queue, a folder with more files than the queue holds would overflow it at every rescan,
    and every overflow asks for another rescan: a livelock (seen as a CI flake, issue 15)."""
    for i in range(300):
        (docs / f"doc-{i:03d}.md").write_text(
            f"# Doc {i}\n\nEntry {i:05d} of the parts list.\n", encoding="utf-8"
        )
    kb.ingestor.ingest([docs])  # indexed beforehand: every rescan below only reads and hashes
    sync = FolderSync(kb.ingestor, [docs], quiet_period=0.2)
    try:
        with tiny_queue():  # 300 files read = 600+ open/close events with the old mask
            sync.start()
            probe = docs / "probe.md"
            probe.write_text("# Probe\n\nThe watcher is up.\n", encoding="utf-8")
            wait_for(lambda: key(probe) in kb.store.documents(), what="the probe file")
        assert sync.wait_idle(WAIT)
        for _ in range(
            5
        ):  # whether one rescan overflows depends on scheduling; five rarely all pass
            before = sync.stats.reconciles
            sync.request_reconcile("a test asks for a full comparison")
            assert sync.wait_idle(WAIT), "the rescan kept overflowing the queue and rescanning"
            assert sync.stats.reconciles == before + 1, "the rescan overflowed the queue itself"
        settle(kb.store, docs, sync)
    finally:
        sync.stop()
