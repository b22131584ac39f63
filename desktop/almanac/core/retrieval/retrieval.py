"""Hybrid search: vector similarity and BM25 full-text, fused into one ranking.

The default fusion is a convex combination of scores: the cosine similarity as it is (already on a
fixed scale) plus BM25 divided by the query's best BM25 (BM25 has no fixed scale). Scores keep the
margins that ranks throw away. BM25's weight shrinks when its list is flat (its best hit barely
beats the rest: the query's words are everywhere, as "revenue" in a folder of financial reports),
since it then says little about which passage is meant. On SciFact train, SQuAD and Docugami this
ranks documents better than reciprocal rank fusion (``fusion="rrf"``, kept for comparison); see
benchmarks/tune_retrieval.py for the measurements.

The relevance floor is on cosine similarity (comparable across queries, unlike BM25 or fused
scores): when no candidate reaches it, the honest answer is "nothing relevant", not the least-bad
passage.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

from almanac.core.embedding.embedding import Embedder
from almanac.core.records import Hit, SearchFilters, SearchResult
from almanac.core.store.lexical import named_codes
from almanac.core.store.store import Store, StoredChunk

Fusion = Literal["convex", "rrf"]
FUSIONS: tuple[Fusion, ...] = ("convex", "rrf")


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """Fused score of a chunk, per ``fusion``:

    convex: ``vector_weight * cosine + text_weight * confidence * BM25 / best BM25``
    rrf:    ``vector_weight / (rrf_k + vector rank) + text_weight / (rrf_k + text rank)``

    A chunk missing from one retriever's list gets nothing from it (under convex, a chunk found
    by words alone still gets its cosine, computed from its stored vector). ``confidence`` is
    ``text_confidence`` of the query's BM25 list over ``text_peak_depth`` hits (None: always 1).
    """

    candidates: int = 100  # per retriever, before fusion
    fusion: Fusion = "convex"
    vector_weight: float = 0.65
    text_weight: float = 0.35
    text_peak_depth: int | None = 10
    rrf_k: float = 60.0
    relevance_floor: float = 0.25  # cosine similarity of the best candidate

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError("candidates must be at least 1")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        if self.vector_weight < 0 or self.text_weight < 0:
            raise ValueError("fusion weights must not be negative")
        if self.vector_weight + self.text_weight <= 0:
            raise ValueError("at least one fusion weight must be positive")
        if self.text_peak_depth is not None and self.text_peak_depth < 2:
            raise ValueError("text_peak_depth must be at least 2 (or None)")
        if self.rrf_k <= 0:
            raise ValueError("rrf_k must be positive")
        if not -1.0 <= self.relevance_floor <= 1.0:
            raise ValueError("relevance_floor is a cosine similarity between -1 and 1")


@dataclass(slots=True)
class Candidate:
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

    def with_config(self, config: RetrievalConfig) -> Searcher:
        """The same index searched with other settings (a user's relevance floor), leaving this
        one as it is for everyone else who holds it. Shares the thread pool: close only the
        original."""
        other = copy.copy(self)
        other.config = config
        return other

    def absent_words(self, words: Iterable[str]) -> frozenset[str]:
        """Of ``words``, those that no indexed document contains; a word the full-text index
        cannot answer for (a stop word, a code, no index yet) counts as present."""
        return frozenset(w for w in words if self.store.contains_word(w) is False)

    def absent_codes(self, text: str) -> tuple[str, ...]:
        """The codes ``text`` names ("E-1042", see ``lexical.named_codes``) that no indexed
        document contains, as ``text`` writes them."""
        return tuple(
            raw
            for raw, term in named_codes(text).items()
            if self.store.contains_word(term) is False
        )

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

        candidates = fuse(by_vector, by_text, qvec, cfg)
        best = max(
            (c.vector_score for c in candidates if c.vector_score is not None),
            default=None,
        )
        threshold = cfg.relevance_floor if floor is None else floor
        if best is None or best < threshold:
            return SearchResult(query=query, hits=(), relevant=False, best_similarity=best)
        # A passage below the floor stays only if it matched the query's words (an error code,
        # a product name): semantic similarity alone that weak is noise.
        kept = [
            c
            for c in candidates
            if c.text_score is not None
            or (c.vector_score is not None and c.vector_score >= threshold)
        ]
        ranked = kept[:k]
        hits = tuple(_hit(c) for c in ranked)
        return SearchResult(query=query, hits=hits, relevant=True, best_similarity=best)


def fuse(
    by_vector: Sequence[StoredChunk],
    by_text: Sequence[StoredChunk],
    qvec: np.ndarray,
    config: RetrievalConfig,
) -> list[Candidate]:
    """Every candidate of either list (each best first), best fused score first; ties by chunk id,
    so the order is stable."""
    candidates: dict[str, Candidate] = {}
    for chunk in by_vector:
        cand = candidates.setdefault(chunk.chunk_id, Candidate(chunk))
        cand.vector_score = chunk.score
    for chunk in by_text:
        cand = candidates.setdefault(chunk.chunk_id, Candidate(chunk))
        cand.text_score = chunk.score
        if cand.vector_score is None and chunk.vector is not None:
            # Text-only candidates get a cosine too: every hit is judged against the floor, and
            # convex fusion weighs it like any other.
            cand.vector_score = float(np.dot(chunk.vector, qvec))
    if config.fusion == "rrf":
        for ranked, weight in ((by_vector, config.vector_weight), (by_text, config.text_weight)):
            for rank, chunk in enumerate(ranked):
                candidates[chunk.chunk_id].fused += weight / (config.rrf_k + rank + 1)
    else:
        text_scores = [c.score for c in by_text]
        best_text = max(text_scores, default=0.0)
        text_weight = config.text_weight * text_confidence(text_scores, config.text_peak_depth)
        for cand in candidates.values():
            if cand.vector_score is not None:
                cand.fused += config.vector_weight * cand.vector_score
            if cand.text_score is not None and best_text > 0:
                cand.fused += text_weight * cand.text_score / best_text
    return sorted(candidates.values(), key=lambda c: (-c.fused, c.chunk.chunk_id))


def text_confidence(scores: Sequence[float], depth: int | None) -> float:
    """How much a BM25 list tells apart: 1 when its best score is at least twice the mean of its
    top ``depth`` scores (ranks it lacks count as 0, so a lone hit is decisive), falling linearly
    to 0 as the list flattens to all-equal scores. ``depth`` None: always 1."""
    if depth is None:
        return 1.0
    top = sorted(scores, reverse=True)[:depth]
    if not top or top[0] <= 0:
        return 0.0
    mean = sum(top) / depth
    return min(1.0, max(0.0, 2.0 * (1.0 - mean / top[0])))


def _hit(c: Candidate) -> Hit:
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
