"""Fusion of the vector and full-text candidate lists (``almanac.core.retrieval.retrieval.fuse``).

The lists are built by hand; every expected order is worked out in the comments.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from almanac.core.retrieval.retrieval import RetrievalConfig, fuse, text_confidence
from almanac.core.store.store import StoredChunk

QVEC = np.array([1.0, 0.0], dtype=np.float32)


def _unit(cosine: float) -> np.ndarray:
    """A unit vector whose cosine with QVEC is ``cosine``."""
    return np.array([cosine, math.sqrt(1.0 - cosine * cosine)], dtype=np.float32)


def _vec(chunk_id: str, cosine: float) -> StoredChunk:
    return StoredChunk(chunk_id, f"/docs/{chunk_id}.md", "text", "", None, 0, 4, cosine)


def _txt(chunk_id: str, bm25: float, cosine: float) -> StoredChunk:
    # Text search returns each chunk's vector, so fusion can work out its cosine.
    return StoredChunk(
        chunk_id, f"/docs/{chunk_id}.md", "text", "", None, 0, 4, bm25, _unit(cosine)
    )


# BM25 at full weight (no damping of flat lists) unless a test says otherwise.
CONVEX = RetrievalConfig(
    fusion="convex", vector_weight=0.65, text_weight=0.35, text_peak_depth=None
)
RRF = RetrievalConfig(fusion="rrf", vector_weight=1.0, text_weight=1.0, rrf_k=60.0)


def _ids(cands) -> list[str]:
    return [c.chunk.chunk_id for c in cands]


def test_convex_adds_weighted_cosine_and_bm25_relative_to_the_best():
    by_vector = [_vec("a", 0.8), _vec("b", 0.5)]
    by_text = [_txt("b", 10.0, 0.5), _txt("c", 5.0, 0.2)]
    fused = fuse(by_vector, by_text, QVEC, CONVEX)
    # a: 0.65*0.8 = 0.52; b: 0.65*0.5 + 0.35*10/10 = 0.675; c: 0.65*0.2 + 0.35*5/10 = 0.305
    assert _ids(fused) == ["b", "a", "c"]
    scores = {c.chunk.chunk_id: c.fused for c in fused}
    assert scores == pytest.approx({"a": 0.52, "b": 0.675, "c": 0.305})


def test_each_candidate_once_with_the_scores_it_has():
    by_vector = [_vec("a", 0.8), _vec("b", 0.5)]
    by_text = [_txt("b", 10.0, 0.5), _txt("c", 5.0, 0.2)]
    found = {c.chunk.chunk_id: c for c in fuse(by_vector, by_text, QVEC, CONVEX)}
    assert len(found) == 3
    assert (found["a"].vector_score, found["a"].text_score) == (0.8, None)
    assert (found["b"].vector_score, found["b"].text_score) == (0.5, 10.0)
    # c was found by words only: its cosine comes from its stored vector.
    assert found["c"].vector_score == pytest.approx(0.2, abs=1e-6)
    assert found["c"].text_score == 5.0


def test_convex_keeps_a_strong_cosine_margin_that_rank_fusion_throws_away():
    by_vector = [_vec("a", 0.9), _vec("b", 0.3)]
    by_text = [_txt("b", 10.0, 0.3), _txt("c", 9.9, 0.1)]
    # convex: a 0.65*0.9 = 0.585; b 0.65*0.3 + 0.35 = 0.545; c 0.65*0.1 + 0.35*0.99 = 0.4115
    assert _ids(fuse(by_vector, by_text, QVEC, CONVEX)) == ["a", "b", "c"]
    # rrf: b 1/61 + 1/62 beats a 1/61, which beats c 1/62: being in both lists is all that counts
    assert _ids(fuse(by_vector, by_text, QVEC, RRF)) == ["b", "a", "c"]


def test_rrf_weights_and_k():
    by_vector = [_vec("a", 0.9), _vec("b", 0.8)]
    by_text = [_txt("c", 3.0, 0.1), _txt("a", 2.0, 0.9)]
    fused = fuse(by_vector, by_text, QVEC, replace(RRF, text_weight=2.0, rrf_k=1.0))
    # a: 1/(1+1) + 2/(1+2) = 1.1667; c: 2/(1+1) = 1.0; b: 1/(1+2) = 0.3333
    assert _ids(fused) == ["a", "c", "b"]
    assert [c.fused for c in fused] == pytest.approx([0.5 + 2 / 3, 1.0, 1 / 3])


def test_ties_are_broken_by_chunk_id():
    by_vector = [_vec("z", 0.5), _vec("m", 0.5), _vec("a", 0.5)]
    assert _ids(fuse(by_vector, [], QVEC, CONVEX)) == ["a", "m", "z"]


def test_no_text_hits_ranks_by_cosine_alone():
    by_vector = [_vec("a", 0.7), _vec("b", 0.4)]
    fused = fuse(by_vector, [], QVEC, CONVEX)
    assert _ids(fused) == ["a", "b"]
    assert [c.fused for c in fused] == pytest.approx([0.65 * 0.7, 0.65 * 0.4])


def test_text_weight_zero_ignores_words_and_vector_weight_zero_ignores_meaning():
    by_vector = [_vec("a", 0.9), _vec("b", 0.2)]
    by_text = [_txt("b", 8.0, 0.2), _txt("a", 1.0, 0.9)]
    only_vector = replace(CONVEX, vector_weight=1.0, text_weight=0.0)
    only_text = replace(CONVEX, vector_weight=0.0, text_weight=1.0)
    assert _ids(fuse(by_vector, by_text, QVEC, only_vector)) == ["a", "b"]
    assert _ids(fuse(by_vector, by_text, QVEC, only_text)) == ["b", "a"]


def test_empty_lists():
    assert fuse([], [], QVEC, CONVEX) == []
    assert fuse([], [], QVEC, RRF) == []


@pytest.mark.parametrize(
    ("scores", "depth", "expected"),
    [
        # mean of the top 10 = (10 + 9 * 5) / 10 = 5.5; 2 * (1 - 5.5 / 10) = 0.9
        ([10.0, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], 10, 0.9),
        # the best is exactly twice the mean (6 vs 3): full weight
        ([6.0, 2.0, 1.0], 3, 1.0),
        # a lone hit: missing ranks count 0, mean 0.8 -> 2 * 0.9 = 1.8, capped at 1
        ([8.0], 10, 1.0),
        # all equal: BM25 cannot tell its hits apart
        ([4.0, 4.0, 4.0, 4.0], 4, 0.0),
        # order of the input does not matter: top 2 are 10 and 5, mean 7.5 -> 0.5
        ([5.0, 1.0, 10.0], 2, 0.5),
        ([], 10, 0.0),
        ([3.0, 3.0], None, 1.0),
    ],
)
def test_text_confidence(scores, depth, expected):
    assert text_confidence(scores, depth) == pytest.approx(expected)


def test_a_flat_bm25_list_loses_its_weight():
    by_vector = [_vec("c", 0.6), _vec("a", 0.5), _vec("b", 0.4)]
    flat_text = [_txt("b", 3.0, 0.4), _txt("c", 3.0, 0.6)]
    # Full weight: b 0.65*0.4 + 0.35 = 0.61 passes a 0.65*0.5 = 0.325; c 0.39 + 0.35 = 0.74.
    assert _ids(fuse(by_vector, flat_text, QVEC, CONVEX)) == ["c", "b", "a"]
    # Damped over depth 2: both hits score 3.0, confidence 0, so cosine alone orders them.
    damped = replace(CONVEX, text_peak_depth=2)
    assert _ids(fuse(by_vector, flat_text, QVEC, damped)) == ["c", "a", "b"]


def test_a_peaked_bm25_list_keeps_part_of_its_weight():
    by_vector = [_vec("c", 0.6), _vec("a", 0.5), _vec("b", 0.4)]
    by_text = [_txt("b", 6.0, 0.4), _txt("c", 2.0, 0.6)]
    # depth 2: mean 4, confidence 2 * (1 - 4/6) = 2/3, BM25 weight 0.35 * 2/3 = 0.2333
    # b: 0.26 + 0.2333 = 0.4933; c: 0.39 + 0.2333 * 2/6 = 0.4678; a: 0.325
    fused = fuse(by_vector, by_text, QVEC, replace(CONVEX, text_peak_depth=2))
    assert _ids(fused) == ["b", "c", "a"]
    assert [c.fused for c in fused] == pytest.approx(
        [0.26 + 0.35 * 2 / 3, 0.39 + 0.35 * 2 / 9, 0.325]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fusion": "sum"}, "fusion must be one of convex, rrf"),
        ({"vector_weight": -0.1}, "must not be negative"),
        ({"vector_weight": 0.0, "text_weight": 0.0}, "at least one fusion weight"),
        ({"rrf_k": 0.0}, "rrf_k must be positive"),
        ({"text_peak_depth": 1}, "text_peak_depth must be at least 2"),
        ({"candidates": 0}, "candidates must be at least 1"),
        ({"relevance_floor": 1.5}, "relevance_floor"),
    ],
)
def test_config_rejects_nonsense(change, message):
    with pytest.raises(ValueError, match=message):
        RetrievalConfig(**change)


def test_defaults_are_the_tuned_convex_fusion():
    cfg = RetrievalConfig()
    assert cfg.fusion == "convex"
    assert cfg.relevance_floor == 0.25  # the null-retrieval contract is unchanged
