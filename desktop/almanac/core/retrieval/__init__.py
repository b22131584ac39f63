"""Hybrid search over the store: vector and full-text candidates fused into ranked hits."""

from almanac.core.retrieval.retrieval import RetrievalConfig, Searcher

__all__ = ["RetrievalConfig", "Searcher"]
