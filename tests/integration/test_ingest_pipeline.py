"""The ingestion pipeline's behaviour: progress, cancel, concurrent readers, vector reuse."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from almanac.core.indexing.ingest import IngestCancelled
from almanac.core.records import IngestProgress

from kbcheck import assert_consistent


def _folder(root: Path, n: int, paragraphs: int = 4) -> Path:
    root.mkdir()
    for i in range(n):
        body = "\n\n".join(
            f"Item {i}.{p}: instructions for appliance model {i} step {p} with care."
            for p in range(paragraphs)
        )
        (root / f"doc-{i:03d}.md").write_text(f"# Appliance {i}\n\n{body}", encoding="utf-8")
    return root


def test_progress_reports_files_and_chunks(kb, tmp_path):
    folder = _folder(tmp_path / "docs", 40)
    seen: list[IngestProgress] = []
    kb.ingestor.embed_window = 16  # several batches, several reports
    report = kb.ingestor.ingest([folder], progress=seen.append)
    assert len(seen) >= 3
    assert seen[0].files_total == 40 and seen[0].files_done == 0
    done = [p.files_done for p in seen]
    assert done == sorted(done)
    assert seen[-1].files_done == 40 and seen[-1].chunks_done == report.chunks_written
    assert seen[-1].chunks_per_second > 0
    assert set(report.timings) == {"scan", "parse", "chunk", "embed", "write"}


def test_cancel_keeps_what_was_indexed(kb, tmp_path):
    folder = _folder(tmp_path / "docs", 60)
    kb.ingestor.embed_window = 8
    cancel = threading.Event()

    def progress(p: IngestProgress) -> None:
        if p.files_done >= 10:
            cancel.set()

    with pytest.raises(IngestCancelled):
        kb.ingestor.ingest([folder], progress=progress, cancel=cancel)
    docs = kb.store.documents()
    assert 10 <= len(docs) < 60
    assert_consistent(kb.store)
    # Finishing later indexes only the rest.
    report = kb.ingestor.ingest([folder])
    assert report.unchanged == len(docs) and report.added == 60 - len(docs)
    assert_consistent(kb.store)


def test_search_while_ingesting(kb, tmp_path):
    first = _folder(tmp_path / "first", 5)
    kb.ingestor.ingest([first])
    second = _folder(tmp_path / "second", 60)
    kb.ingestor.embed_window = 16
    errors: list[BaseException] = []
    results: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                results.append(len(kb.searcher.search("appliance model instructions", 5).hits))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        kb.ingestor.ingest([second])
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert results and all(n == 5 for n in results)
    assert_consistent(kb.store)


def test_renamed_file_reuses_its_vectors(kb, tmp_path):
    folder = _folder(tmp_path / "docs", 3, paragraphs=12)
    kb.ingestor.ingest([folder])
    (folder / "doc-001.md").rename(folder / "renamed.md")
    report = kb.ingestor.ingest([folder])
    assert report.added == 1 and report.removed == 1
    assert report.chunks_embedded == 0 and report.chunks_reused > 0
    paths = {Path(p).name for p in kb.store.documents()}
    assert paths == {"doc-000.md", "renamed.md", "doc-002.md"}
    assert_consistent(kb.store)


def test_orphans_from_a_crash_between_commits_are_swept(kb, tmp_path):
    folder = _folder(tmp_path / "docs", 3)
    kb.ingestor.ingest([folder])
    victim = (folder / "doc-001.md").as_posix()
    # The state a crash leaves after the chunk commit but before the documents commit of a new
    # file: its chunks are present, its row is not, and the writer's dirty marker remains.
    kb.store._documents.delete(f"path = '{victim}'")
    (kb.path / "ingest.dirty").touch()
    (folder / "doc-001.md").unlink()
    kb.ingestor.ingest([folder])
    rows = kb.store.all_chunk_rows(["doc_path"]).to_pylist()
    assert rows and all(row["doc_path"] != victim for row in rows)
    assert_consistent(kb.store)
    assert not (kb.path / "ingest.dirty").exists()


def test_query_embedding_is_not_blocked_by_a_whole_ingest_window(embedder):
    texts = [
        f"Passage {i} about printers, toner and paper trays in the office." for i in range(512)
    ]
    finished: list[str] = []
    started = threading.Event()

    class Signalling(list):
        def __len__(self) -> int:  # first call inside embed(): the big job has begun
            started.set()
            return super().__len__()

    def big_job() -> None:
        embedder.embed(Signalling(texts))
        finished.append("window")

    thread = threading.Thread(target=big_job)
    thread.start()
    assert started.wait(30)
    embedder.embed_query("how do I replace the toner")
    finished.append("query")
    thread.join()
    # The window is 8 batches; the query slots in between them instead of waiting for all 8.
    assert finished == ["query", "window"]


def test_store_opened_before_the_index_existed_uses_it(make_kb, tmp_path):
    reader = make_kb()  # opened on an empty knowledge base: no full-text index yet
    writer = make_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(
        "# Codes\n\nError NW-611 means the quota is exceeded.", encoding="utf-8"
    )
    writer.ingestor.ingest([folder])
    hits = reader.store.text_search("NW-611 quota", 5)
    assert hits and "quota" in hits[0].text
