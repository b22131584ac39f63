"""The ANN vector index: created past a row count, exact scores, recall, freshness, compaction.

Real LanceDB stores in temp folders with a small threshold, and vectors drawn from a mixture of
Gaussians (a few dozen centres): nearest neighbours mean something, as with real embeddings,
and unlike uniform random vectors, where every point is about as far as any other.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest

from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.records import Chunk, DocumentInfo, DocumentStatus, SearchFilters
from almanac.core.store.ann_index import AnnAction, AnnPolicy, IndexState
from almanac.core.store.store import DocumentWrite, Store, StoredChunk, chunk_id

DIM = 384
PER_DOC = 100
THRESHOLD = 3_000
T0 = 1_700_000_000.0


class Corpus:
    """Documents of PER_DOC chunks with clustered unit vectors, and the exact answers."""

    def __init__(self, seed: int = 7, centres: int = 40) -> None:
        self.rng = np.random.default_rng(seed)
        c = self.rng.standard_normal((centres, DIM)).astype(np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        self.vectors: dict[str, np.ndarray] = {}  # chunk id -> vector, for what the store holds

    def sample(self, n: int) -> np.ndarray:
        which = self.rng.integers(0, len(self.centres), size=n)
        noise = self.rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
        v = self.centres[which] + noise
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def doc(self, n: int, folder: str = "a", kind: str = "md", mtime: float = T0) -> DocumentWrite:
        path = f"/kb/{folder}/doc-{n:04d}.{kind}"
        vectors = self.sample(PER_DOC)
        chunks = [
            Chunk(
                doc_path=path,
                ordinal=i,
                text=f"passage {i} of document {n} word{n}x{i}",
                heading_path=("Doc",),
                page=None,
                start=i * 100,
                end=i * 100 + 50,
                chunk_hash=f"{n:08x}{i:08x}{mtime:.0f}",
            )
            for i in range(PER_DOC)
        ]
        info = DocumentInfo(
            path=path,
            source="/kb",
            rel_path=path[4:],
            sha256=f"{n:064x}",
            size=1,
            mtime=mtime,
            kind=kind,
            status=DocumentStatus.INDEXED,
            error="",
            chunk_count=PER_DOC,
            indexed_at=mtime,
        )
        for c, v in zip(chunks, vectors, strict=True):
            self.vectors[chunk_id(c.doc_path, c.ordinal, c.chunk_hash)] = v
        return DocumentWrite(info, chunks, vectors)

    def forget(self, path: str) -> None:
        prefix = chunk_id(path, 0, "")[:16]
        self.vectors = {k: v for k, v in self.vectors.items() if not k.startswith(prefix)}

    def exact(self, query: np.ndarray, k: int, keep: set[str] | None = None) -> list[str]:
        ids = [i for i in self.vectors if keep is None or i in keep]
        sims = np.stack([self.vectors[i] for i in ids]) @ query
        return [ids[j] for j in np.argsort(-sims, kind="stable")[:k]]


def open_store(
    path: Path, policy: AnnPolicy | None = None, compact_after_commits: int = 20
) -> Store:
    return Store(
        path,
        dim=DIM,
        embedder_name="test-384d",
        ann_policy=policy or AnnPolicy(threshold=THRESHOLD),
        compact_after_commits=compact_after_commits,
    )


def fill(
    store: Store, corpus: Corpus, docs: range, folder: str = "a", kind: str = "md", mtime=T0
) -> None:
    store.write_documents([corpus.doc(n, folder, kind, mtime) for n in docs])


@pytest.fixture
def corpus() -> Corpus:
    return Corpus()


@pytest.fixture
def indexed(tmp_path: Path, corpus: Corpus) -> Store:
    """3,200 rows in three folders, two kinds, ten days of mtimes, with its vector index."""
    store = open_store(tmp_path / "kb")
    for n in range(32):
        folder = ("a", "b", "c")[n % 3]
        kind = "pdf" if n % 4 == 0 else "md"
        fill(store, corpus, range(n, n + 1), folder=folder, kind=kind, mtime=T0 + n * 86_400 / 3)
    store.ensure_indexes()
    assert store.storage_stats().vector_index is not None
    return store


def ids(hits: list[StoredChunk]) -> list[str]:
    return [h.chunk_id for h in hits]


def assert_exact_scores(hits: list[StoredChunk], query: np.ndarray, corpus: Corpus) -> None:
    for h in hits:
        assert h.score == pytest.approx(float(corpus.vectors[h.chunk_id] @ query), abs=1e-5)


# -- when an index exists -------------------------------------------------------------------------


def test_index_created_once_rows_pass_threshold(tmp_path: Path, corpus: Corpus) -> None:
    store = open_store(tmp_path / "kb")
    fill(store, corpus, range(0, 29))  # 2,900 rows: below
    store.ensure_indexes()
    assert store.storage_stats().vector_index is None
    q = corpus.sample(1)[0]
    flat = store.vector_search(q, 10)
    assert ids(flat) == corpus.exact(q, 10)  # flat search is exact

    fill(store, corpus, range(29, 31))  # 3,100 rows
    store.ensure_indexes()
    stats = store.storage_stats()
    assert stats.vector_index == "IVF_RQ"
    assert stats.unindexed_rows == 0


def test_indexed_search_has_exact_cosines_and_high_recall(indexed: Store, corpus: Corpus) -> None:
    queries = corpus.sample(40)
    recall = []
    for q in queries:
        hits = indexed.vector_search(q, 10)
        assert len(hits) == 10
        assert_exact_scores(hits, q, corpus)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        recall.append(len(set(ids(hits)) & set(corpus.exact(q, 10))) / 10)
    assert np.mean(recall) >= 0.95


def test_rows_written_after_the_index_are_found_at_once(indexed: Store, corpus: Corpus) -> None:
    fresh = corpus.doc(500, folder="new")
    indexed.write_documents([fresh])  # no ensure_indexes: not in the index yet
    assert indexed.storage_stats().unindexed_rows == PER_DOC
    for i in (0, 57):
        hits = indexed.vector_search(fresh.vectors[i], 5)
        assert hits[0].doc_path == fresh.info.path
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    text_hits = indexed.text_search("word500x57", 5)
    assert text_hits and text_hits[0].chunk_id == chunk_id(
        fresh.info.path, 57, fresh.chunks[57].chunk_hash
    )


def test_deleted_and_replaced_rows_are_never_returned(indexed: Store, corpus: Corpus) -> None:
    gone = "/kb/b/doc-0001.md"
    old_vectors = [v for k, v in corpus.vectors.items() if k.startswith(chunk_id(gone, 0, "")[:16])]
    indexed.remove_documents([gone])
    corpus.forget(gone)
    # A document rewritten with new vectors: its old rows are deleted from the indexed data.
    replaced = "/kb/c/doc-0002.md"
    old_replaced = [
        v for k, v in corpus.vectors.items() if k.startswith(chunk_id(replaced, 0, "")[:16])
    ]
    corpus.forget(replaced)
    indexed.write_documents([corpus.doc(2, folder="c", mtime=T0 + 1)])
    for q in old_vectors[:10] + old_replaced[:10]:
        hits = indexed.vector_search(q, 10)
        assert all(h.chunk_id in corpus.vectors for h in hits)
        assert gone not in {h.doc_path for h in hits}
        assert_exact_scores(hits, q, corpus)


def test_filters_work_with_the_index(indexed: Store, corpus: Corpus) -> None:
    rows = indexed.all_chunk_rows(["id", "doc_path", "kind", "mtime"]).to_pylist()
    cases = [
        (SearchFilters(path_prefix="/kb/b"), lambda r: r["doc_path"].startswith("/kb/b/")),
        (SearchFilters(kinds=("pdf",)), lambda r: r["kind"] == "pdf"),
        (
            SearchFilters(modified_after=T0 + 86_400 * 4, modified_before=T0 + 86_400 * 6),
            lambda r: T0 + 86_400 * 4 <= r["mtime"] <= T0 + 86_400 * 6,
        ),
        # One document of 32: most partitions hold none of its rows, yet all k must come back.
        (
            SearchFilters(path_prefix="/kb/a/doc-0003.md"),
            lambda r: r["doc_path"] == "/kb/a/doc-0003.md",
        ),
    ]
    for filters, matches in cases:
        keep = {r["id"] for r in rows if matches(r)}
        assert len(keep) >= 10
        for q in corpus.sample(5):
            hits = indexed.vector_search(q, 10, filters)
            assert len(hits) == 10
            assert {h.chunk_id for h in hits} <= keep
            assert_exact_scores(hits, q, corpus)
            truth = corpus.exact(q, 10, keep)
            assert len(set(ids(hits)) & set(truth)) >= 9


def test_reopened_store_uses_the_index(indexed: Store, corpus: Corpus) -> None:
    again = open_store(indexed.kb_dir)
    assert again.storage_stats().vector_index == "IVF_RQ"
    for q in corpus.sample(5):
        assert ids(again.vector_search(q, 10)) == ids(indexed.vector_search(q, 10))
    # The policy's state survives too: nothing to do right after the build.
    assert again.storage_stats().trained_rows == 3_200
    assert again.ensure_indexes() is AnnAction.NONE


# -- keeping it fresh -----------------------------------------------------------------------------


def test_new_rows_are_folded_in_and_growth_retrains(indexed: Store, corpus: Corpus) -> None:
    fill(indexed, corpus, range(100, 103))  # 300 rows > 5% of 3,200
    assert indexed.storage_stats().unindexed_rows == 300
    indexed.ensure_indexes()
    assert indexed.storage_stats().unindexed_rows == 0
    assert indexed.storage_stats().trained_rows == 3_200  # folded, not retrained

    fill(indexed, corpus, range(200, 235))  # 7,000 rows: more than twice the trained size
    indexed.ensure_indexes()
    assert indexed.storage_stats().trained_rows == 7_000
    q = corpus.sample(1)[0]
    assert_exact_scores(indexed.vector_search(q, 10), q, corpus)


def test_folds_pile_up_until_a_retrain_makes_one_segment(tmp_path: Path, corpus: Corpus) -> None:
    policy = AnnPolicy(threshold=THRESHOLD, fold_fraction=0.01, max_segments=3)
    store = open_store(tmp_path / "kb", policy, compact_after_commits=10_000)
    fill(store, corpus, range(0, 32))
    store.maybe_maintain()
    assert store.storage_stats().index_segments == 1
    folds = 0
    while store.storage_stats().index_segments <= 3:
        # 100 new rows: more than 1% of the table, so folded in as a new segment
        fill(store, corpus, range(100 + folds, 101 + folds))
        assert not store.maybe_maintain()
        folds += 1
        assert folds < 8, "folds never add segments"
    piled = store.storage_stats()
    assert piled.unindexed_rows == 0
    assert piled.fragments >= 3  # folded data files of different segments are never merged

    fill(store, corpus, range(200, 201))
    assert store.maybe_maintain()  # retrained, then compacted
    after = store.storage_stats()
    assert after.index_segments == 1
    assert after.fragments < piled.fragments
    assert store.storage_stats().trained_rows == 3_200 + 100 * (folds + 1)
    recall = []
    for q in corpus.sample(20):
        hits = store.vector_search(q, 10)
        assert_exact_scores(hits, q, corpus)
        recall.append(len(set(ids(hits)) & set(corpus.exact(q, 10))) / 10)
    assert np.mean(recall) >= 0.95


def test_index_dropped_when_the_table_shrinks(indexed: Store, corpus: Corpus) -> None:
    doomed = sorted({k for k in indexed.documents() if not k.startswith("/kb/a/")})
    indexed.remove_documents(doomed)
    for path in doomed:
        corpus.forget(path)
    indexed.ensure_indexes()  # 1,100 rows, under half the threshold
    assert indexed.storage_stats().vector_index is None
    q = corpus.sample(1)[0]
    assert ids(indexed.vector_search(q, 10)) == corpus.exact(q, 10)


def test_policy_plans() -> None:
    p = AnnPolicy(threshold=1_000, fold_fraction=0.05, fold_max_rows=500, regrow_factor=2.0)
    assert p.plan(IndexState(rows=999, has_index=False)) is AnnAction.NONE
    assert p.plan(IndexState(rows=1_000, has_index=False)) is AnnAction.CREATE
    state = IndexState(rows=1_049, has_index=True, unindexed_rows=49, trained_rows=1_000)
    assert p.plan(state) is AnnAction.NONE
    state = IndexState(rows=1_050, has_index=True, unindexed_rows=50, trained_rows=1_000)
    assert p.plan(state) is AnnAction.FOLD
    # The fold ceiling: a big table never scans more than fold_max_rows flat.
    state = IndexState(rows=100_500, has_index=True, unindexed_rows=500, trained_rows=100_000)
    assert p.plan(state) is AnnAction.FOLD
    state = IndexState(rows=2_000, has_index=True, unindexed_rows=0, trained_rows=1_000)
    assert p.plan(state) is AnnAction.REBUILD
    state = IndexState(rows=1_500, has_index=True, trained_rows=1_500, version=0)
    assert p.plan(state) is AnnAction.REBUILD
    state = IndexState(rows=1_500, has_index=True, trained_rows=1_500, segments=9)
    assert p.plan(state) is AnnAction.REBUILD
    state = IndexState(rows=1_500, has_index=True, trained_rows=1_500, segments=8)
    assert p.plan(state) is AnnAction.NONE
    assert p.plan(IndexState(rows=499, has_index=True, trained_rows=1_000)) is AnnAction.DROP
    assert p.plan(IndexState(rows=700, has_index=True, trained_rows=1_000)) is AnnAction.NONE
    with pytest.raises(ValueError, match="threshold"):
        AnnPolicy(threshold=0)


# -- writes ---------------------------------------------------------------------------------------


def test_new_documents_append_and_rewrites_replace(indexed: Store, corpus: Corpus) -> None:
    rows = indexed.count_chunks()
    indexed.write_documents([corpus.doc(900, folder="n"), corpus.doc(901, folder="n")])  # new
    assert indexed.count_chunks() == rows + 2 * PER_DOC
    # A rewrite with fewer chunks: the stale ones go in the same commit.
    shorter = corpus.doc(900, folder="n", mtime=T0 + 5)
    shorter = DocumentWrite(shorter.info, shorter.chunks[:30], shorter.vectors[:30])
    indexed.write_documents([shorter])
    ids_now = indexed.all_chunk_rows(["id", "doc_path"]).to_pylist()
    assert len(ids_now) == rows + PER_DOC + 30
    assert len({r["id"] for r in ids_now}) == len(ids_now)
    assert sum(r["doc_path"] == shorter.info.path for r in ids_now) == 30
    # Chunks without a document row (a crash between the two commits) are replaced, not doubled.
    indexed._documents.delete("path = '/kb/n/doc-0901.md'")
    indexed.write_documents([corpus.doc(901, folder="n")])
    paths = indexed.all_chunk_rows(["doc_path"])["doc_path"].to_pylist()
    assert paths.count("/kb/n/doc-0901.md") == PER_DOC


# -- compaction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_index", [False, True], ids=["flat", "indexed"])
def test_compaction_after_many_small_updates(
    tmp_path: Path, corpus: Corpus, with_index: bool
) -> None:
    threshold = THRESHOLD if with_index else 1_000_000
    store = open_store(tmp_path / "kb", AnnPolicy(threshold=threshold), 10_000)
    fill(store, corpus, range(0, 32))
    store.ensure_indexes()
    for round_ in range(3):  # 66 small commits: rewrites of single documents, adds, removals
        for n in range(10):
            corpus.forget(f"/kb/a/doc-{n:04d}.md")
            fill(store, corpus, range(n, n + 1), mtime=T0 + round_ + 1)
        fill(store, corpus, range(40 + round_, 41 + round_))
        store.remove_documents([f"/kb/a/doc-{20 + round_:04d}.md"])
        corpus.forget(f"/kb/a/doc-{20 + round_:04d}.md")
    queries = corpus.sample(10)
    before_hits = [store.vector_search(q, 10) for q in queries]
    before_text = [ids(store.text_search(f"word{n}x5", 5)) for n in (3, 15, 41)]
    before = store.storage_stats()

    store.compact(grace=datetime.timedelta(0))

    after = store.storage_stats()
    assert after.rows == before.rows == 32 * PER_DOC
    assert after.fragments < before.fragments
    assert after.versions < before.versions
    assert after.disk_bytes < before.disk_bytes
    assert after.vector_index == before.vector_index
    assert after.unindexed_rows == 0
    recall_before, recall_after = [], []
    for q, old in zip(queries, before_hits, strict=True):
        new = store.vector_search(q, 10)
        assert_exact_scores(new, q, corpus)
        if with_index:
            # Rows that were scanned flat now sit in partitions, where near-ties may swap
            # places: the answers stay as close to exact search as before.
            truth = set(corpus.exact(q, 10))
            recall_before.append(len(set(ids(old)) & truth) / 10)
            recall_after.append(len(set(ids(new)) & truth) / 10)
        else:
            assert ids(new) == ids(old)
            assert [h.score for h in new] == pytest.approx([h.score for h in old], abs=1e-6)
    if with_index:
        assert np.mean(recall_after) >= 0.95
        assert np.mean(recall_before) >= 0.95
    assert [ids(store.text_search(f"word{n}x5", 5)) for n in (3, 15, 41)] == before_text
    assert len(store.documents()) == 32


def test_maybe_maintain_compacts_after_enough_commits(tmp_path: Path, corpus: Corpus) -> None:
    # Folding never kicks in here, so only the commit count can trigger a compaction.
    policy = AnnPolicy(threshold=THRESHOLD, fold_fraction=1.0, fold_max_rows=1_000_000)
    store = open_store(tmp_path / "kb", policy, compact_after_commits=8)
    fill(store, corpus, range(0, 10))  # 2 commits: chunks, documents
    assert not store.maybe_maintain()  # builds the FTS index, no compaction
    fill(store, corpus, range(10, 11))
    store.remove_documents(["/kb/a/doc-0000.md"])
    assert not store.maybe_maintain()  # 6 commits
    fill(store, corpus, range(11, 12))
    fragments = store.storage_stats().fragments
    assert store.maybe_maintain()  # 8 commits
    assert store.storage_stats().fragments < fragments
    assert not store.maybe_maintain()
    # A new Store starts counting at 0, but sees the small files the last one left.
    for n in range(12, 20):
        fill(store, corpus, range(n, n + 1))
    again = open_store(tmp_path / "kb", policy, compact_after_commits=8)
    assert again.compaction_due()


def test_ingest_maintains_the_store_when_it_finishes(tmp_path: Path, embedder) -> None:
    store = Store(tmp_path / "kb", dim=embedder.dim, embedder_name=embedder.name)
    ingestor = Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig()))
    folder = tmp_path / "docs"
    folder.mkdir()
    fragments = []
    for i in range(10):  # each ingest: one new file, one small data file
        (folder / f"note-{i}.md").write_text(f"# Note {i}\n\nThe code word is zeta{i}.\n")
        ingestor.ingest([folder])
        fragments.append(store.storage_stats().fragments)
    # Without maintenance there would be one data file per ingest.
    assert max(fragments) <= 2
    ingestor.remove([folder / "note-3.md"])
    assert store.storage_stats().fragments <= 2
    assert store.text_search("zeta0", 3)[0].doc_path.endswith("note-0.md")
    assert store.text_search("zeta9", 3)[0].doc_path.endswith("note-9.md")
    assert all(not h.doc_path.endswith("note-3.md") for h in store.text_search("zeta3", 3))
