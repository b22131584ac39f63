"""Hybrid search: vector similarity and BM25 full-text, fused by reciprocal rank.

The relevance floor is on cosine similarity (comparable across queries, unlike BM25 or RRF scores):
when no candidate reaches it, the honest answer is "nothing relevant", not the least-bad passage.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from almanac.core.embedding import Embedder
from almanac.core.records import Hit, SearchFilters, SearchResult
from almanac.core.store import Store, StoredChunk


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    candidates: int = 50  # per retriever, before fusion
    rrf_k: float = 60.0
    vector_weight: float = 1.0
    text_weight: float = 1.0
    relevance_floor: float = 0.25  # cosine similarity of the best candidate

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError("candidates must be at least 1")
        if not -1.0 <= self.relevance_floor <= 1.0:
            raise ValueError("relevance_floor is a cosine similarity between -1 and 1")


@dataclass(slots=True)
class _Candidate:
    chunk: StoredChunk
    fused: float = 0.0
    vector_score: float | None = None
    text_score: float | None = None


class Searcher:
    """Read-only; safe to use from many threads while an ingest writes."""

    def __init__(
        self, store: Store, embedder: Embedder, config: RetrievalConfig | None = None
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="almanac-search")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def search(
        self,
        query: str,
        k: int = 8,
        filters: SearchFilters | None = None,
        *,
        floor: float | None = None,
    ) -> SearchResult:
        query = query.strip()
        if not query:
            raise ValueError("empty query")
        if k < 1:
            raise ValueError("k must be at least 1")
        cfg = self.config
        n = max(cfg.candidates, k)
        # Full-text search doesn't need the query vector: run it while the query is embedded.
        text_future = self._pool.submit(self.store.text_search, query, n, filters)
        qvec = self.embedder.embed_query(query)
        by_vector = self.store.vector_search(qvec, n, filters)
        by_text = text_future.result()

        candidates: dict[str, _Candidate] = {}
        for rank, chunk in enumerate(by_vector):
            cand = candidates.setdefault(chunk.chunk_id, _Candidate(chunk))
            cand.vector_score = chunk.score
            cand.fused += cfg.vector_weight / (cfg.rrf_k + rank + 1)
        for rank, chunk in enumerate(by_text):
            cand = candidates.setdefault(chunk.chunk_id, _Candidate(chunk))
            cand.text_score = chunk.score
            if cand.vector_score is None and chunk.vector is not None:
                # Text-only candidates get a cosine too, so every hit is judged against the floor.
                cand.vector_score = float(np.dot(chunk.vector, qvec))
            cand.fused += cfg.text_weight / (cfg.rrf_k + rank + 1)

        best = max(
            (c.vector_score for c in candidates.values() if c.vector_score is not None),
            default=None,
        )
        threshold = cfg.relevance_floor if floor is None else floor
        if best is None or best < threshold:
            return SearchResult(query=query, hits=(), relevant=False, best_similarity=best)
        # A passage below the floor stays only if it matched the query's words (an error code,
        # a product name): semantic similarity alone that weak is noise.
        kept = [
            c
            for c in candidates.values()
            if c.text_score is not None
            or (c.vector_score is not None and c.vector_score >= threshold)
        ]
        ranked = sorted(kept, key=lambda c: (-c.fused, c.chunk.chunk_id))[:k]
        hits = tuple(_hit(c) for c in ranked)
        return SearchResult(query=query, hits=hits, relevant=True, best_similarity=best)


def _hit(c: _Candidate) -> Hit:
    ch = c.chunk
    return Hit(
        chunk_id=ch.chunk_id,
        path=ch.doc_path,
        page=ch.page,
        start=ch.start,
        end=ch.end,
        heading=ch.heading,
        text=ch.text,
        score=c.fused,
        vector_score=c.vector_score,
        text_score=c.text_score,
    )
