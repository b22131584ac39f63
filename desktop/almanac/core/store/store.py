"""The knowledge base on disk: two LanceDB tables (documents, chunks) in one folder.

Atomicity: a batch of documents replaces its chunks in ONE LanceDB commit (merge-insert with a
delete of the batch's stale rows), so a reader never sees half a document or two versions of it.
The documents table is written after the chunks; a crash in between leaves a documents row that
disagrees with the file on disk, which the next ingest notices (sha256) and redoes idempotently.

Every commit adds a table version and usually a small data file. ``maybe_maintain`` (called by the
writer when it goes idle) keeps the vector index in step with the table (see ``ann_index``) and,
after enough commits, compacts the files and deletes versions older than a grace period, so
neither query time nor disk use grows with the number of edits.
"""

from __future__ import annotations

import datetime
import errno
import functools
import hashlib
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pyarrow as pa

from almanac.core.embedding.embedding import embedding_text
from almanac.core.records import Chunk, DocumentInfo, DocumentStatus, SearchFilters
from almanac.core.store.ann_index import (
    INDEX_VERSION,
    AnnAction,
    AnnPolicy,
    IndexState,
    index_config,
    search_params,
)
from almanac.core.store.lexical import with_identifier_terms

SCHEMA_VERSION = 1
_META_FILE = "almanac-kb.json"
_IN_LIST_SIZE = 400  # keep SQL IN (...) lists bounded
_VECTOR_INDEX = "vector_idx"
_FTS_INDEX = "search_text_idx"
# Scalar indexes, built with the vector index: past the ANN threshold a filter (path prefix, kind,
# mtime), the upsert join on id and the ingest's chunk-hash lookup would otherwise scan every row.
_SCALAR_INDEXES = {
    "id": "btree",
    "doc_path": "btree",
    "chunk_hash": "btree",
    "kind": "bitmap",
    "mtime": "btree",
}
# Compact after this many commits (each write or delete of a batch is one or two).
COMPACT_AFTER_COMMITS = 20
# Old versions stay this long after a compaction: a query still reading one (this process or
# another; queries take milliseconds, and every query moves to the latest version) must not lose
# its files under it. Superseded files (old index copies, pre-compaction data) live this long.
VERSION_GRACE = datetime.timedelta(minutes=5)


class StoreError(Exception):
    pass


class DiskFullError(StoreError):
    """The disk holding the knowledge base is full. Every write is one commit, so what was
    committed before stays consistent; the writer retries once space is back."""


# LanceDB reports I/O failures as RuntimeError("lance error: LanceError(IO): No space left on
# device (os error 28), /root/.cargo/...rs:258:9"): the words and the errno are what is stable.
_DISK_FULL = re.compile(r"no space left on device|disk quota exceeded|os error (28|122)\b", re.I)

_F = TypeVar("_F", bound=Callable[..., Any])


def _disk_full_in_words(method: _F) -> _F:
    """Store writes fail with "disk full" in words, not a raw LanceError."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if not (full or _DISK_FULL.search(str(exc))):
                raise
            raise DiskFullError(
                f"disk full: no space left on the disk that holds the knowledge base "
                f"({self.kb_dir}); what was indexed before is intact, and indexing resumes once "
                "space is freed"
            ) from exc

    return cast(_F, wrapper)


def _write_meta(kb_dir: Path, meta: dict[str, Any]) -> None:
    # Write-then-rename: a crash leaves the old or the new file, never half of one.
    meta_path = Path(kb_dir) / _META_FILE
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    tmp.replace(meta_path)


def read_meta(kb_dir: Path) -> dict[str, Any]:
    meta_path = Path(kb_dir) / _META_FILE
    if not meta_path.is_file():
        raise StoreError(
            f"no knowledge base at {kb_dir} (run 'almanac ingest PATH --kb {kb_dir}' first)"
        )
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"knowledge base metadata is unreadable: {meta_path}") from exc
    return meta


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk row as read back for search results."""

    chunk_id: str
    doc_path: str
    text: str
    heading: str
    page: int | None
    start: int
    end: int
    score: float  # cosine similarity (vector search) or BM25 (text search)
    vector: np.ndarray | None = None  # returned by text search, so fusion can compute a cosine


@dataclass(frozen=True, slots=True)
class StorageStats:
    """The chunks table on disk: what compaction shrinks."""

    rows: int
    fragments: int  # data files (one or more per commit until compacted)
    versions: int  # table versions still on disk
    disk_bytes: int  # everything under the knowledge base's LanceDB folder, old versions too
    vector_index: str | None  # index type, None while search is exact (flat)
    index_segments: int  # the vector index as trained plus its deltas (0: no index)
    trained_rows: int  # table size the vector index was trained at (0: no index)
    unindexed_rows: int  # rows the vector index doesn't cover yet (searched flat)


@dataclass(frozen=True, slots=True)
class DocumentWrite:
    """One document's complete new state: its row plus all of its chunks and their vectors."""

    info: DocumentInfo
    chunks: Sequence[Chunk]
    vectors: np.ndarray  # (len(chunks), dim) float32, normalized


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def _batches(values: Sequence[str], size: int = _IN_LIST_SIZE) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def chunk_id(doc_path: str, ordinal: int, hash_: str) -> str:
    doc = hashlib.sha1(doc_path.encode("utf-8")).hexdigest()[:16]
    return f"{doc}-{ordinal:06d}-{hash_[:12]}"


def documents_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),
            pa.field("source", pa.string()),
            pa.field("rel_path", pa.string()),
            pa.field("sha256", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime", pa.float64()),
            pa.field("kind", pa.string()),
            pa.field("status", pa.string()),
            pa.field("error", pa.string()),
            pa.field("chunk_count", pa.int32()),
            pa.field("indexed_at", pa.float64()),
            pa.field("pipeline", pa.string()),
        ]
    )


def chunks_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("doc_path", pa.string()),
            pa.field("chunk_hash", pa.string()),
            pa.field("ordinal", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("heading", pa.string()),
            # What the embedder saw; the full-text index covers it so headings match words too.
            pa.field("search_text", pa.string()),
            pa.field("page", pa.int32()),
            pa.field("start_offset", pa.int32()),
            pa.field("end_offset", pa.int32()),
            pa.field("kind", pa.string()),
            pa.field("mtime", pa.float64()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ]
    )


class Store:
    """One writer, many readers. All methods are safe to call from several threads."""

    def __init__(
        self,
        kb_dir: Path,
        *,
        dim: int,
        embedder_name: str,
        ann_policy: AnnPolicy | None = None,
        compact_after_commits: int = COMPACT_AFTER_COMMITS,
    ) -> None:
        import lancedb

        self.kb_dir = Path(kb_dir)
        self.kb_dir.mkdir(parents=True, exist_ok=True)
        known = self._check_meta(dim, embedder_name)
        self.dim = dim
        # Interval 0: every read sees the latest commit, so search reflects an ingest at once.
        self._db = lancedb.connect(
            str(self.kb_dir / "lancedb"), read_consistency_interval=datetime.timedelta(0)
        )
        self._write_lock = threading.Lock()
        self.ann_policy = ann_policy or AnnPolicy()
        self.compact_after_commits = compact_after_commits
        self._commits_since_compaction = 0
        existing = set(self._table_names())
        self._documents = (
            self._db.open_table("documents")
            if "documents" in existing
            else self._db.create_table("documents", schema=documents_schema())
        )
        self._chunks = (
            self._db.open_table("chunks")
            if "chunks" in existing
            else self._db.create_table("chunks", schema=chunks_schema(dim))
        )
        if not known:
            # Written last: the metadata file is what marks a folder as a knowledge base, so
            # another process (open_existing) never opens one whose tables don't exist yet.
            _write_meta(
                self.kb_dir,
                {"schema_version": SCHEMA_VERSION, "dim": dim, "embedder": embedder_name},
            )
        self._fts_ready = any(i.index_type == "FTS" for i in self._chunks.list_indices())
        self._trained_rows = int(self._index_meta().get("trained_rows", 0))

    @classmethod
    def open_existing(cls, kb_dir: Path, *, ann_policy: AnnPolicy | None = None) -> Store:
        """Open a knowledge base without loading its embedder (status, remove)."""
        meta = read_meta(kb_dir)
        return cls(
            kb_dir, dim=int(meta["dim"]), embedder_name=str(meta["embedder"]), ann_policy=ann_policy
        )

    # -- metadata -----------------------------------------------------------------------------

    def _table_names(self) -> list[str]:
        result: Any = self._db.list_tables()
        names = getattr(result, "tables", result)
        return list(names)

    def _check_meta(self, dim: int, embedder_name: str) -> bool:
        """False for a new knowledge base; raises if an existing one doesn't fit this embedder."""
        meta_path = self.kb_dir / _META_FILE
        if meta_path.exists():
            meta = read_meta(self.kb_dir)
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise StoreError(
                    f"knowledge base {self.kb_dir} has schema version "
                    f"{meta.get('schema_version')}, this Almanac needs {SCHEMA_VERSION}"
                )
            if meta.get("dim") != dim or meta.get("embedder") != embedder_name:
                raise StoreError(
                    f"knowledge base {self.kb_dir} was built with embedder "
                    f"{meta.get('embedder')!r} ({meta.get('dim')}-d); re-index it to use "
                    f"{embedder_name!r} ({dim}-d)"
                )
            return True
        return False

    def _index_meta(self) -> dict[str, Any]:
        entry = read_meta(self.kb_dir).get("vector_index")
        return entry if isinstance(entry, dict) else {}

    def _set_index_meta(self, entry: dict[str, Any] | None) -> None:
        meta = read_meta(self.kb_dir)
        if entry is None:
            meta.pop("vector_index", None)
        else:
            meta["vector_index"] = entry
        _write_meta(self.kb_dir, meta)

    # -- documents ----------------------------------------------------------------------------

    def documents(self, where: str | None = None) -> dict[str, DocumentInfo]:
        query = self._documents.search()
        if where:
            query = query.where(where)
        table = query.limit(None).to_arrow() if where else self._documents.to_arrow()
        return {row["path"]: _document_from_row(row) for row in table.to_pylist()}

    def document(self, path: str) -> DocumentInfo | None:
        docs = self.documents(f"path = {sql_str(path)}")
        return docs.get(path)

    def documents_under(self, prefix: str) -> dict[str, DocumentInfo]:
        return {p: d for p, d in self.documents().items() if _is_under(p, prefix)}

    def count_chunks(self) -> int:
        return int(self._chunks.count_rows())

    # -- writes -------------------------------------------------------------------------------

    def vectors_for_hashes(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Existing vectors by chunk hash, so unchanged text is never embedded twice."""
        wanted = sorted(set(hashes))
        found: dict[str, np.ndarray] = {}
        if not wanted or self._chunks.count_rows() == 0:
            return found
        for group in _batches(wanted):
            table = (
                self._chunks.search()
                .where(_in_list("chunk_hash", group))
                .select(["chunk_hash", "vector"])
                .limit(None)
                .to_arrow()
            )
            hashes_col = table["chunk_hash"].to_pylist()
            vectors = _vector_matrix(table, self.dim)
            for h, vec in zip(hashes_col, vectors, strict=True):
                found.setdefault(h, vec)
        return found

    @_disk_full_in_words
    def write_documents(self, writes: Sequence[DocumentWrite]) -> None:
        """Replace the chunks of every document in ``writes`` atomically, then their rows."""
        if not writes:
            return
        paths = [w.info.path for w in writes]
        rows = _chunk_rows(writes, self.dim)
        with self._write_lock:
            if self._has_chunks_of(paths):
                (
                    self._chunks.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(_in_list("doc_path", paths))
                    .execute(rows)
                )
                self._commits_since_compaction += 1
            elif rows.num_rows:
                # Nothing to replace: an append is the same single commit without the join over
                # the whole table that merge_insert needs to find stale rows (at 1M rows: 2-3 s
                # and gigabytes per commit, against milliseconds).
                self._chunks.add(rows)
                self._commits_since_compaction += 1
            self._upsert_documents([w.info for w in writes])

    def _has_chunks_of(self, paths: Sequence[str]) -> bool:
        # Asks the chunks table itself, not the documents table: after a crash between the two
        # commits a document may have chunks but no row yet.
        return any(
            self._chunks.count_rows(_in_list("doc_path", group)) > 0
            for group in _batches(list(paths))
        )

    @_disk_full_in_words
    def record_failures(self, infos: Sequence[DocumentInfo]) -> None:
        """A file that can't be read keeps a row with its error and loses its stale chunks."""
        if not infos:
            return
        with self._write_lock:
            self._delete_chunks([i.path for i in infos])
            self._upsert_documents(infos)

    @_disk_full_in_words
    def mark_pending(self, infos: Sequence[DocumentInfo]) -> None:
        """Scans waiting for OCR (status ``pending``): their rows are written, any chunks of a
        previous version are kept (searchable until the new version is read)."""
        if not infos:
            return
        with self._write_lock:
            self._upsert_documents(infos)

    @_disk_full_in_words
    def remove_documents(self, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        with self._write_lock:
            self._delete_chunks(paths)
            for group in _batches(list(paths)):
                self._documents.delete(_in_list("path", group))
                self._commits_since_compaction += 1
        return len(paths)

    def remove_under(self, paths: Sequence[str]) -> int:
        """Remove documents at these paths or under these folders."""
        known = self.documents()  # once, not once per path: a folder delete may name thousands
        doomed = sorted(p for p in known if any(_is_under(p, key) for key in paths))
        return self.remove_documents(doomed)

    @_disk_full_in_words
    def sweep_orphans(self) -> int:
        """Delete chunks whose document row is gone (a crash between the two commits)."""
        known = set(self.documents())
        chunk_docs = set(self.all_chunk_rows(["doc_path"])["doc_path"].to_pylist())
        orphans = sorted(chunk_docs - known)
        if orphans:
            with self._write_lock:
                self._delete_chunks(orphans)
        return len(orphans)

    def _delete_chunks(self, paths: Sequence[str]) -> None:
        for group in _batches(list(paths)):
            self._chunks.delete(_in_list("doc_path", group))
            self._commits_since_compaction += 1

    def _upsert_documents(self, infos: Sequence[DocumentInfo]) -> None:
        table = pa.Table.from_pylist([_document_row(i) for i in infos], schema=documents_schema())
        (
            self._documents.merge_insert("path")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(table)
        )
        self._commits_since_compaction += 1

    # -- indexes and maintenance --------------------------------------------------------------

    def _has_fts_index(self) -> bool:
        # Another Store (or process) may have built the index since this one was opened.
        if not self._fts_ready:
            self._fts_ready = any(i.index_type == "FTS" for i in self._chunks.list_indices())
        return self._fts_ready

    @_disk_full_in_words
    def ensure_indexes(self) -> AnnAction:
        """Create the full-text index once there is data; create, fold new rows into, retrain
        or drop the vector index as ``ann_policy`` says. Cheap when there is nothing to do.
        Returns what it did to the vector index."""
        from lancedb.index import FTS

        rows = self._chunks.count_rows()
        if rows == 0:
            return AnnAction.NONE
        with self._write_lock:
            if not self._has_fts_index():
                self._chunks.create_index(
                    "search_text", config=FTS(), replace=True, name=_FTS_INDEX
                )
                self._fts_ready = True
            if rows >= self.ann_policy.threshold:
                self._ensure_scalar_indexes()
            action = self.ann_policy.plan(self._index_state(rows))
            if action in (AnnAction.CREATE, AnnAction.REBUILD):
                # Trained on every row there is now; replace=True swaps it in in one commit, so
                # searches keep using the old index (or flat search) until the new one is ready.
                self._chunks.create_index(
                    "vector", config=index_config(rows), replace=True, name=_VECTOR_INDEX
                )
                self._set_index_meta({"trained_rows": rows, "version": INDEX_VERSION})
                self._trained_rows = rows
            elif action is AnnAction.DROP:
                self._chunks.drop_index(_VECTOR_INDEX)
                self._set_index_meta(None)
                self._trained_rows = 0
            if action is AnnAction.FOLD or self._fts_fold_due():
                self._optimize(self._chunks)
        return action

    def _ensure_scalar_indexes(self) -> None:
        from lancedb.index import Bitmap, BTree

        have = {i.name for i in self._chunks.list_indices()}
        for column, kind in _SCALAR_INDEXES.items():
            if f"{column}_idx" not in have:
                config = Bitmap() if kind == "bitmap" else BTree()
                self._chunks.create_index(column, config=config, name=f"{column}_idx")

    def _vector_index_stats(self) -> Any:
        if not any(i.name == _VECTOR_INDEX for i in self._chunks.list_indices()):
            return None
        return self._chunks.index_stats(_VECTOR_INDEX)

    def _index_state(self, rows: int) -> IndexState:
        stats = self._vector_index_stats()
        if stats is None:
            return IndexState(rows=rows, has_index=False)
        meta = self._index_meta()
        return IndexState(
            rows=rows,
            has_index=True,
            unindexed_rows=int(stats.num_unindexed_rows),
            trained_rows=int(meta.get("trained_rows", 0)),
            version=int(meta.get("version", 0)),
            segments=int(stats.num_indices or 1),
        )

    def _fts_fold_due(self) -> bool:
        stats = self._chunks.index_stats(_FTS_INDEX) if self._fts_ready else None
        if stats is None:
            return False
        return int(stats.num_unindexed_rows) >= self.ann_policy.fold_at(int(stats.num_indexed_rows))

    def _optimize(self, table: Any, grace: datetime.timedelta = VERSION_GRACE) -> None:
        # One LanceDB call does all three: merge small data files (dropping deleted rows), fold
        # unindexed rows into every index, delete versions older than ``grace``.
        with warnings.catch_warnings():
            # LanceDB warns that grace 0 breaks concurrent readers of old versions: callers
            # that pass 0 (tests, benchmarks) have none.
            warnings.simplefilter("ignore", UserWarning)
            table.optimize(cleanup_older_than=grace)
        if table is self._chunks:
            self._commits_since_compaction = 0

    @_disk_full_in_words
    def compact(self, *, grace: datetime.timedelta = VERSION_GRACE) -> None:
        """Merge small data files, fold new rows into the indexes and delete table versions
        older than ``grace``, in both tables. Searches see the same rows before and after."""
        with self._write_lock:
            self._optimize(self._chunks, grace)
            self._optimize(self._documents, grace)

    def compaction_due(self) -> bool:
        if self._commits_since_compaction >= self.compact_after_commits:
            return True
        # The commit count starts again at 0 with every Store; the table remembers small files.
        return _fragment_counts(self._chunks)[1] >= self.compact_after_commits

    @_disk_full_in_words
    def maybe_maintain(self) -> bool:
        """Keep the indexes in step, and compact after enough commits. For the writer to call
        when it goes idle (an ingest or a removal just finished). True if it compacted."""
        action = self.ensure_indexes()
        # A retrained index covers every data file again, so the small ones can be merged now.
        if action is not AnnAction.REBUILD and not self.compaction_due():
            return False
        self.compact()
        return True

    def storage_stats(self) -> StorageStats:
        vector = self._vector_index_stats()
        lance_dir = self.kb_dir / "lancedb"
        disk = sum(f.stat().st_size for f in lance_dir.rglob("*") if f.is_file())
        return StorageStats(
            rows=int(self._chunks.count_rows()),
            fragments=_fragment_counts(self._chunks)[0],
            versions=len(self._chunks.list_versions()),
            disk_bytes=disk,
            vector_index=None if vector is None else str(vector.index_type),
            index_segments=0 if vector is None else int(vector.num_indices or 1),
            trained_rows=0 if vector is None else int(self._index_meta().get("trained_rows", 0)),
            unindexed_rows=0 if vector is None else int(vector.num_unindexed_rows),
        )

    def vector_search(
        self, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[StoredChunk]:
        rows = self._chunks.count_rows()
        if rows == 0:
            return []
        params = search_params(self._trained_rows or rows, k)
        query: Any = self._chunks.search(vector.tolist(), vector_column_name="vector")
        # With an index: probe that many partitions, then re-score the candidates with the
        # stored vectors, so the distances returned are exact. Without one LanceDB ignores both
        # and searches flat (exact). Rows not yet in the index are always searched, flat.
        query = query.distance_type("cosine").refine_factor(params.refine_factor)
        where = filter_sql(filters)
        if where:
            # A filter may leave fewer than k rows in the probed partitions: let LanceDB probe
            # on (no upper bound) until it has k.
            query = query.maximum_nprobes(0).minimum_nprobes(params.partitions)
            query = query.where(where, prefilter=True)
        else:
            query = query.nprobes(params.partitions)
        found = query.select([*_RESULT_COLUMNS, "_distance"]).limit(k).to_arrow()
        scores = 1.0 - found["_distance"].to_numpy().astype(np.float64)
        return _stored_chunks(found, scores)

    def text_search(
        self, text: str, k: int, filters: SearchFilters | None = None
    ) -> list[StoredChunk]:
        if not text.strip() or not self._has_fts_index():
            return []
        query = self._chunks.search(
            with_identifier_terms(text), query_type="fts", fts_columns="search_text"
        )
        where = filter_sql(filters)
        if where:
            query = query.where(where, prefilter=True)
        found = query.select([*_RESULT_COLUMNS, "vector", "_score"]).limit(k).to_arrow()
        # Column-wise: 100 hits' vectors as Python float lists would cost more than the search.
        vectors = _vector_matrix(found, self.dim) if found.num_rows else None
        scores = found["_score"].to_numpy().astype(np.float64)
        return _stored_chunks(found, scores, vectors)

    def contains_word(self, word: str) -> bool | None:
        """Whether any chunk (its text or headings) has ``word``, as the full-text index's own
        stemming sees it ("cables" finds "cable"), or a code's compact term ("e1042" for
        "E-1042", see ``lexical``); None when there is no full-text index to ask or the word is
        one the index drops or can't tell apart (a stop word, a bare number, punctuation)."""
        word = word.strip().lower()
        plain = word.isalpha() and len(word) >= 3 and word not in FTS_STOP_WORDS
        code = (
            word.isascii()
            and word.isalnum()
            and any(ch.isdigit() for ch in word)
            and any(ch.isalpha() for ch in word)
        )
        if not (plain or code) or not self._has_fts_index():
            return None
        found = (
            self._chunks.search(word, query_type="fts", fts_columns="search_text")
            # "_score" asked for: without it LanceDB 0.40 logs a deprecation warning per query.
            .select(["id", "_score"])
            .limit(1)
            .to_arrow()
        )
        return bool(found.num_rows > 0)

    def chunks_of(self, path: str) -> list[StoredChunk]:
        rows = (
            self._chunks.search()
            .where(f"doc_path = {sql_str(path)}")
            .select([*_RESULT_COLUMNS, "ordinal"])
            .limit(None)
            .to_arrow()
            .sort_by("ordinal")
        )
        return _stored_chunks(rows, np.zeros(rows.num_rows))

    def all_chunk_rows(self, columns: Sequence[str]) -> pa.Table:
        return self._chunks.search().select(list(columns)).limit(None).to_arrow()

    def iter_chunk_rows(
        self, columns: Sequence[str], batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Every chunk row, a batch at a time: memory stays bounded for a table of any size."""
        reader = self._chunks.search().select(list(columns)).limit(None).to_batches(batch_rows)
        yield from reader


_RESULT_COLUMNS = ["id", "doc_path", "text", "heading", "page", "start_offset", "end_offset"]
# Words LanceDB's full-text index (lancedb 0.40, English: stop words removed after stemming, so
# "mostly" goes with "most") never holds: asking for one finds nothing whether the documents have
# it or not. Found by indexing 3,000 common words; tests/integration/test_absent_words.py checks
# the list against the installed LanceDB.
_FTS_STOP_TEXT = """
    a about after again against ain all am an and are aren as at be been being below between
    both but by can couldn d did didn do doesn doing don down downs each few for from
    further had hadn has hasn have haven having he her here hers herself him himself his how
    i if in into is isn it its itself just ll m ma me mightn more most mostly mustn my
    myself needn no nor not now o of off on or other others our ours out over own owned re s
    same shan she should shouldn so some such t than that the their theirs them then there
    these theses they this those through to too under until up ve was wasn we were weren
    what when where which while who whom will with won wouldn y you your yours yourself
"""
FTS_STOP_WORDS = frozenset(_FTS_STOP_TEXT.split())


def _fragment_counts(table: Any) -> tuple[int, int]:
    """(data files, small data files) of a LanceDB table."""
    stats: Any = table.stats()
    # A dict in some LanceDB releases, a dataclass in others.
    frag: Any = stats["fragment_stats"] if isinstance(stats, dict) else stats.fragment_stats
    if isinstance(frag, dict):
        return int(frag["num_fragments"]), int(frag["num_small_fragments"])
    return int(frag.num_fragments), int(frag.num_small_fragments)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def filter_sql(filters: SearchFilters | None) -> str | None:
    if filters is None:
        return None
    clauses: list[str] = []
    if filters.path_prefix:
        prefix = filters.path_prefix
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = sql_str(escaped.rstrip("/") + "/%")
        clauses.append(f"(doc_path = {sql_str(prefix)} OR doc_path LIKE {pattern} ESCAPE '\\')")
    if filters.kinds:
        clauses.append(_in_list("kind", [k.lower().lstrip(".") for k in filters.kinds]))
    if filters.modified_after is not None:
        clauses.append(f"mtime >= {float(filters.modified_after)!r}")
    if filters.modified_before is not None:
        clauses.append(f"mtime <= {float(filters.modified_before)!r}")
    return " AND ".join(clauses) or None


def _stored_chunks(
    table: pa.Table, scores: np.ndarray, vectors: np.ndarray | None = None
) -> list[StoredChunk]:
    columns = {name: table[name].to_pylist() for name in _RESULT_COLUMNS}
    return [
        StoredChunk(
            chunk_id=columns["id"][i],
            doc_path=columns["doc_path"][i],
            text=columns["text"][i],
            heading=columns["heading"][i] or "",
            page=int(columns["page"][i]) if columns["page"][i] is not None else None,
            start=int(columns["start_offset"][i]),
            end=int(columns["end_offset"][i]),
            score=float(scores[i]),
            vector=None if vectors is None else vectors[i],
        )
        for i in range(table.num_rows)
    ]


def _vector_matrix(table: pa.Table, dim: int) -> np.ndarray:
    column = table["vector"].combine_chunks()
    flat = column.values.to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)


def _chunk_rows(writes: Sequence[DocumentWrite], dim: int) -> pa.Table:
    ids: list[str] = []
    doc_paths: list[str] = []
    hashes: list[str] = []
    ordinals: list[int] = []
    texts: list[str] = []
    headings: list[str] = []
    search_texts: list[str] = []
    pages: list[int | None] = []
    starts: list[int] = []
    ends: list[int] = []
    kinds: list[str] = []
    mtimes: list[float] = []
    vector_parts: list[np.ndarray] = []
    for write in writes:
        if len(write.chunks) != len(write.vectors):
            raise StoreError(
                f"{write.info.path}: {len(write.chunks)} chunks but {len(write.vectors)} vectors"
            )
        for chunk in write.chunks:
            ids.append(chunk_id(chunk.doc_path, chunk.ordinal, chunk.chunk_hash))
            doc_paths.append(chunk.doc_path)
            hashes.append(chunk.chunk_hash)
            ordinals.append(chunk.ordinal)
            texts.append(chunk.text)
            headings.append(chunk.heading)
            search_texts.append(
                with_identifier_terms(embedding_text(chunk.heading_path, chunk.text))
            )
            pages.append(chunk.page)
            starts.append(chunk.start)
            ends.append(chunk.end)
            kinds.append(write.info.kind)
            mtimes.append(write.info.mtime)
        if len(write.chunks):
            vector_parts.append(np.asarray(write.vectors, dtype=np.float32).reshape(-1, dim))
    flat = (
        np.concatenate(vector_parts).reshape(-1) if vector_parts else np.zeros(0, dtype=np.float32)
    )
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), dim)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "doc_path": pa.array(doc_paths, pa.string()),
            "chunk_hash": pa.array(hashes, pa.string()),
            "ordinal": pa.array(ordinals, pa.int32()),
            "text": pa.array(texts, pa.string()),
            "heading": pa.array(headings, pa.string()),
            "search_text": pa.array(search_texts, pa.string()),
            "page": pa.array(pages, pa.int32()),
            "start_offset": pa.array(starts, pa.int32()),
            "end_offset": pa.array(ends, pa.int32()),
            "kind": pa.array(kinds, pa.string()),
            "mtime": pa.array(mtimes, pa.float64()),
            "vector": vectors,
        },
        schema=chunks_schema(dim),
    )


def _document_row(info: DocumentInfo) -> dict[str, Any]:
    return {
        "path": info.path,
        "source": info.source,
        "rel_path": info.rel_path,
        "sha256": info.sha256,
        "size": info.size,
        "mtime": info.mtime,
        "kind": info.kind,
        "status": info.status.value,
        "error": info.error,
        "chunk_count": info.chunk_count,
        "indexed_at": info.indexed_at,
        "pipeline": info.pipeline,
    }


def _document_from_row(row: dict[str, Any]) -> DocumentInfo:
    return DocumentInfo(
        path=row["path"],
        source=row["source"] or "",
        rel_path=row["rel_path"] or "",
        sha256=row["sha256"] or "",
        size=int(row["size"] or 0),
        mtime=float(row["mtime"] or 0.0),
        kind=row["kind"] or "",
        status=DocumentStatus(row["status"]),
        error=row["error"] or "",
        chunk_count=int(row["chunk_count"] or 0),
        indexed_at=float(row["indexed_at"] or 0.0),
        pipeline=row.get("pipeline") or "",
    )
