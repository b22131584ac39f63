"""Real LanceDB, real embedder, real files: ingest, search, incremental updates, filters."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from almanac.core.documents import read_document
from almanac.core.records import DocumentStatus, SearchFilters

from kbcheck import assert_consistent


def _copy_sample(sample_kb: Path, dest: Path) -> Path:
    shutil.copytree(sample_kb, dest)
    return dest


def _hit_matches(hit, path: Path, page, must_contain: str) -> bool:
    return (
        hit.path == path.as_posix()
        and (page is None or hit.page == page)
        and must_contain in f"{hit.heading}\n{hit.text}"
    )


def test_sample_kb_ingests_every_format_and_answers(kb, sample_kb, sample_questions, tmp_path):
    folder = _copy_sample(sample_kb, tmp_path / "docs")
    report = kb.ingestor.ingest([folder])
    assert report.failed == ()
    docs = kb.store.documents()
    kinds = Counter(d.kind for d in docs.values())
    assert set(kinds) == {"pdf", "md", "html", "docx", "txt", "rst", "csv"}
    assert all(d.status is DocumentStatus.INDEXED and d.chunk_count > 0 for d in docs.values())
    assert_consistent(kb.store)

    found_at: list[int | None] = []
    for q in sample_questions:
        result = kb.searcher.search(q["question"], 5)
        assert result.relevant, q["question"]
        rank = next(
            (
                i
                for i, h in enumerate(result.hits)
                if _hit_matches(h, folder / q["path"], q["page"], q["must_contain"])
            ),
            None,
        )
        found_at.append(rank)
    missed = [q["question"] for q, r in zip(sample_questions, found_at, strict=True) if r is None]
    # Every question's passage (right file, right page) is in the top 5, nearly always first.
    assert not missed, missed
    assert sum(1 for r in found_at if r == 0) >= len(found_at) * 0.6


def test_offsets_point_at_the_exact_passage(kb, sample_kb, tmp_path):
    folder = _copy_sample(sample_kb, tmp_path / "docs")
    kb.ingestor.ingest([folder])
    for path in kb.store.documents():
        parsed = read_document(Path(path))
        chunks = kb.store.chunks_of(path)
        assert chunks
        for chunk in chunks:
            assert parsed.page_text(chunk.page)[chunk.start : chunk.end] == chunk.text


def test_pdf_hits_carry_page_numbers(kb, sample_kb, tmp_path):
    folder = _copy_sample(sample_kb, tmp_path / "docs")
    kb.ingestor.ingest([folder])
    result = kb.searcher.search("Which network ports does LAN sync use?", 3)
    top = result.hits[0]
    assert top.path.endswith(".pdf")
    assert top.page is not None and top.page > 1
    assert "47310" in top.text


def test_unrelated_question_is_not_relevant(kb, sample_kb, unanswerable_questions, tmp_path):
    folder = _copy_sample(sample_kb, tmp_path / "docs")
    kb.ingestor.ingest([folder])
    off_topic = [
        "What is a good recipe for sourdough bread?",
        "Which country won the 2010 FIFA World Cup?",
    ]
    for question in off_topic:
        result = kb.searcher.search(question, 5)
        assert not result.relevant
        assert result.hits == ()
        assert result.best_similarity is not None and result.best_similarity < 0.25


def test_incremental_edit_reembeds_only_new_chunks(kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    paragraphs = [
        f"Topic {i}: the quarterly report for region {i} lists revenue, churn and onboarding."
        for i in range(30)
    ]
    doc = folder / "report.md"
    doc.write_text("# Report\n\n" + "\n\n".join(paragraphs), encoding="utf-8")
    (folder / "other.txt").write_text("Completely separate notes about printers.", encoding="utf-8")
    first = kb.ingestor.ingest([folder])
    assert first.added == 2 and first.chunks_embedded == first.chunks_written

    again = kb.ingestor.ingest([folder])
    assert (again.unchanged, again.added, again.updated, again.chunks_embedded) == (2, 0, 0, 0)

    doc.write_text(
        doc.read_text(encoding="utf-8") + "\n\nTopic 99: a new paragraph about zebra migrations.",
        encoding="utf-8",
    )
    edited = kb.ingestor.ingest([folder])
    assert edited.updated == 1 and edited.unchanged == 1
    assert 0 < edited.chunks_embedded < edited.chunks_written
    assert edited.chunks_reused >= edited.chunks_written - edited.chunks_embedded
    hit = kb.searcher.search("zebra migrations", 1).hits[0]
    assert "zebra" in hit.text and hit.path == doc.as_posix()
    assert_consistent(kb.store)

    # Touching a file (same content, new mtime) costs nothing.
    os.utime(doc, (time.time() + 10, time.time() + 10))
    touched = kb.ingestor.ingest([folder])
    assert touched.chunks_embedded == 0 and touched.unchanged == 2


def test_removed_file_and_remove_command(kb, tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# A\n\nAlpha document about kayaks.", encoding="utf-8")
    (folder / "sub" / "b.md").write_text("# B\n\nBeta document about canoes.", encoding="utf-8")
    (folder / "sub" / "c.md").write_text("# C\n\nGamma document about rafts.", encoding="utf-8")
    kb.ingestor.ingest([folder])
    assert len(kb.store.documents()) == 3

    (folder / "a.md").unlink()
    report = kb.ingestor.ingest([folder])
    assert report.removed == 1
    assert all("kayaks" not in h.text for h in kb.searcher.search("kayaks", 5, floor=-1).hits)

    assert kb.ingestor.remove([folder / "sub"]) == 2
    assert kb.store.documents() == {}
    assert kb.store.count_chunks() == 0


def test_filters_by_folder_type_and_date(kb, tmp_path):
    folder = tmp_path / "docs"
    (folder / "manuals").mkdir(parents=True)
    (folder / "notes").mkdir()
    (folder / "manuals" / "printer.md").write_text(
        "# Printer\n\nTo replace the toner, open the front cover.", encoding="utf-8"
    )
    (folder / "notes" / "printer.txt").write_text(
        "Printer toner was replaced last week by the office manager.", encoding="utf-8"
    )
    old = time.time() - 400 * 86400
    os.utime(folder / "notes" / "printer.txt", (old, old))
    kb.ingestor.ingest([folder])

    def paths(filters: SearchFilters) -> set[str]:
        return {h.path for h in kb.searcher.search("printer toner", 5, filters).hits}

    both = paths(SearchFilters())
    assert len(both) == 2
    assert paths(SearchFilters(path_prefix=(folder / "manuals").as_posix())) == {
        (folder / "manuals" / "printer.md").as_posix()
    }
    assert paths(SearchFilters(kinds=("txt",))) == {(folder / "notes" / "printer.txt").as_posix()}
    assert paths(SearchFilters(modified_after=time.time() - 86400)) == {
        (folder / "manuals" / "printer.md").as_posix()
    }
    assert paths(SearchFilters(modified_before=time.time() - 86400)) == {
        (folder / "notes" / "printer.txt").as_posix()
    }


def test_prefix_filter_does_not_match_sibling_folder(kb, tmp_path):
    folder = tmp_path / "docs"
    for name in ("team", "team_b", "team%"):
        (folder / name).mkdir(parents=True)
        (folder / name / "x.md").write_text(
            f"# X\n\nShared word lighthouse in {name}.", encoding="utf-8"
        )
    kb.ingestor.ingest([folder])
    hits = kb.searcher.search(
        "lighthouse", 5, SearchFilters(path_prefix=(folder / "team").as_posix())
    ).hits
    assert {h.path for h in hits} == {(folder / "team" / "x.md").as_posix()}


def test_reopened_store_sees_same_data(kb, make_kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nThe warranty lasts 24 months.", encoding="utf-8")
    kb.ingestor.ingest([folder])
    again = make_kb()  # same kb folder, new Store
    assert again.searcher.search("how long is the warranty", 1).hits[0].text.endswith("24 months.")


def test_embedder_mismatch_is_refused(kb, tmp_path):
    from almanac.core.store.store import Store, StoreError

    with pytest.raises(StoreError, match="re-index"):
        Store(kb.path, dim=768, embedder_name="other-model")
