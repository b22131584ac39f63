"""The OCR slow lane: scans are read by OCR outside the index writer, so a text file saved while
a scan is being read is indexed at once; blocking ingest still returns with the scan indexed;
the lane reports progress and can be cancelled. Real OCR, real store, real watcher."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from almanac.cli import main
from almanac.core.documents.ocr import OCR_HEADING
from almanac.core.indexing.ingest import posix
from almanac.core.indexing.ocr_lane import OcrProgress
from almanac.core.indexing.sync import FolderSync
from almanac.core.records import DocumentStatus
from ocrgen import image_pdf, render_lines

WAIT = 120.0  # OCR on a shared 2-core machine; never a timing assertion, only a give-up bound


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def scan(pages: int) -> bytes:
    images = [
        render_lines(
            [f"Scanned page {n} of the cradle manual.", f"Code Q{n}77 means reboot."],
            width=1000,
            height=500,
        )
        for n in range(1, pages + 1)
    ]
    return image_pdf(images, dpi=100)


@pytest.fixture(autouse=True)
def private_ocr_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


class Gate:
    """Holds the lane after its first page (a progress callback runs on the lane's thread)."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self.seen: list[OcrProgress] = []

    def __call__(self, progress: OcrProgress) -> None:
        self.seen.append(progress)
        if progress.pages_done == 1 and progress.current:
            self.reached.set()
            assert self.release.wait(WAIT)


def searchable(kb, text: str) -> bool:
    return any(text in h.text for h in kb.searcher.search(text, k=5).hits)


def test_blocking_ingest_returns_with_scans_indexed_and_marked(kb, docs: Path) -> None:
    (docs / "scan.pdf").write_bytes(scan(2))
    (docs / "notes.md").write_text("# Notes\n\nThe cradle uses a 24 V adapter.\n")
    report = kb.ingestor.ingest([docs])
    assert report.added == 2 and not report.failed
    info = kb.store.documents()[posix(docs / "scan.pdf")]
    assert info.status is DocumentStatus.INDEXED and "read by OCR: 1, 2" in info.error
    chunks = kb.store.chunks_of(posix(docs / "scan.pdf"))
    assert {c.page for c in chunks} == {1, 2}
    assert all(c.heading.endswith(OCR_HEADING) for c in chunks)
    assert searchable(kb, "Q277")


@pytest.fixture
def live(kb, docs: Path) -> Iterator[FolderSync]:
    sync = FolderSync(kb.ingestor, [docs], quiet_period=0.2)
    sync.start()
    assert sync.wait_idle(WAIT)
    yield sync
    sync.stop()


def waiting_for_ocr(kb, path: Path) -> bool:
    """Deferred to the lane: a ``pending`` row with no chunks and no hash (read again later)."""
    info = kb.store.documents().get(posix(path))
    return (
        info is not None
        and info.status is DocumentStatus.PENDING
        and info.chunk_count == 0
        and not info.sha256
    )


def indexed(kb, path: Path) -> bool:
    info = kb.store.documents().get(posix(path))
    return info is not None and info.status is DocumentStatus.INDEXED


def status_of(kb, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["status", "--kb", str(kb.path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_text_file_saved_during_a_scan_is_indexed_first(
    kb, docs: Path, live, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = Gate()
    kb.ingestor.ocr_lane.on_progress = gate
    try:
        (docs / "big-scan.pdf").write_bytes(scan(3))
        assert gate.reached.wait(WAIT), "the lane never started the scan"
        # The scan is held mid-OCR: the Markdown edit must not wait for it.
        (docs / "faq.md").write_text("# FAQ\n\nThe blue light blinks during pairing mode.\n")
        # Its chunks are committed before its documents row (store.py: a crash in between is
        # redone), so searchable alone does not yet mean that status counts it: wait for both.
        wait_for(
            lambda: searchable(kb, "blue light blinks") and indexed(kb, docs / "faq.md"),
            "the Markdown file",
        )
        assert waiting_for_ocr(kb, docs / "big-scan.pdf")
        assert kb.ingestor.ocr_lane.progress.current.endswith("big-scan.pdf")
        # almanac status, another reader of the store, lists it as waiting for OCR
        report = status_of(kb, capsys)
        assert report["waiting_for_ocr"] == {
            "count": 1,
            "paths": [posix(docs / "big-scan.pdf")],
        }
        assert report["by_status"] == {"indexed": 1, "pending": 1}
        assert main(["status", "--kb", str(kb.path)]) == 0
        text = capsys.readouterr().out
        assert "Waiting for OCR: 1 scanned document(s)" in text
        assert f"  waiting for OCR: {posix(docs / 'big-scan.pdf')}" in text
    finally:
        gate.release.set()
    wait_for(lambda: searchable(kb, "Q377"), "the scan")
    assert kb.ingestor.ocr_lane.wait_idle()
    assert kb.store.documents()[posix(docs / "big-scan.pdf")].status is DocumentStatus.INDEXED
    assert status_of(kb, capsys)["waiting_for_ocr"] == {"count": 0, "paths": []}
    totals = {(p.pages_done, p.pages_total) for p in gate.seen if p.current}
    assert (1, 3) in totals and (3, 3) in totals


def test_cancelled_scan_is_not_indexed(kb, docs: Path, live) -> None:
    gate = Gate()
    lane = kb.ingestor.ocr_lane
    lane.on_progress = gate
    (docs / "scan.pdf").write_bytes(scan(3))
    assert gate.reached.wait(WAIT)
    lane.cancel()
    gate.release.set()
    assert lane.wait_idle()
    assert live.wait_idle(WAIT)
    # not indexed: still waiting for OCR, read again by the next ingest or start
    assert waiting_for_ocr(kb, docs / "scan.pdf")
    assert not searchable(kb, "Q177")
    # the next ingest reads it (its pending row has no hash, so it is never taken as unchanged)
    report = kb.ingestor.ingest([docs])
    assert report.added == 1 and not report.failed
    assert kb.store.documents()[posix(docs / "scan.pdf")].status is DocumentStatus.INDEXED
    assert searchable(kb, "Q177")


def test_progress_reaches_the_listener_in_the_order_it_happened(kb, docs: Path) -> None:
    """The writer's thread (queueing a scan) and the lane's thread both report progress. The
    writer's report is held up here, as a busy scheduler may hold a thread between reading the
    progress and handing it on, until the lane has reported the scan it started (or for a while:
    with ordered reports the lane cannot report first). The listener must never hear "nothing
    is being read" between two reports of the scan: the status bar took that for "done"."""
    lane = kb.ingestor.ocr_lane
    lane_reported = threading.Event()
    heard: list[str] = []

    def listener(progress: OcrProgress) -> None:
        if threading.current_thread().name == "almanac-ocr-lane":
            lane_reported.set()
        elif not heard:
            lane_reported.wait(10.0)
        heard.append(progress.current)

    lane.on_progress = listener
    (docs / "scan.pdf").write_bytes(scan(2))
    report = kb.ingestor.ingest([docs], wait_for_ocr=False)
    assert not report.failed
    assert lane.wait_idle()
    lane.on_progress = None
    reading = [i for i, current in enumerate(heard) if current]
    assert reading, heard
    # "" (waiting) before the scan starts, the scan while it is read, "" once it is done.
    assert all(heard[i] for i in range(reading[0], reading[-1] + 1)), heard
    assert heard[-1] == "", heard
