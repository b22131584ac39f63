"""When the chunks table gets an approximate (ANN) vector index, and how it is kept fresh.

Small knowledge bases use exact flat search: it is fast enough and has perfect recall. From
``threshold`` rows on, an IVF index answers vector queries and LanceDB re-scores the candidates
with the stored vectors (``refine_factor``), so the cosines it returns are exact; only which rows
become candidates is approximate. Rows written after the index was built are not in it but are
still searched, flat, so a fresh write is findable at once; they are folded in (``optimize``) once
enough accumulate to cost noticeable query time. The index is retrained from scratch when the
table has grown well past the size it was trained at, because its partitions were sized for that.

Why IVF-RQ (RaBitQ, 1 bit per dimension) with sqrt(rows) partitions. Measured on this project's
2-core machine while other jobs ran (so absolute times are pessimistic), 384-d vectors: noisy
copies of real MiniLM passage embeddings, real SciFact queries, exact re-scoring in every case:
  * build at 100k rows: IVF-RQ 20-46 s, IVF-SQ 9-28 s, IVF-PQ 163-277 s, IVF-HNSW-SQ 280 s
    (PQ and HNSW on a Gaussian mixture; all four reached Recall@10 >= 0.99 there);
  * 1M rows, 1000 partitions: IVF-RQ builds in 68-263 s and answers k=50 in 10-13 ms at
    Recall@10 0.98-0.99; IVF-SQ builds in 143 s but takes 37-106 ms (8 bits per dimension to
    scan, an index 8x larger); 4000 partitions need 3.7 GB to train, 256 lose recall (0.92 at
    the same scan cost). PQ and HNSW were not tried at 1M: 6-10x the build time at 100k;
  * two knobs set recall: partitions probed (see ``search_params``) and candidates re-scored
    (100k rows, k=10: 50 re-scored 0.95, 100 0.99, 200 1.00).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

# Flat search takes ~27 ms at 30k rows and 45-110 ms at 100k (384-d, 2 busy cores); an indexed
# query 5-10 ms at any of these sizes. Below this, flat search is both exact and fast enough.
DEFAULT_THRESHOLD_ROWS = 25_000

# Candidates re-scored exactly per query (at least twice k).
_RESCORED = 200

# Bumped when the index type or its build parameters change, so existing indexes are rebuilt.
INDEX_VERSION = 1


class AnnAction(enum.Enum):
    NONE = "none"
    CREATE = "create"  # no index yet and the table is big enough
    FOLD = "fold"  # add rows written since the index was built (no retraining)
    REBUILD = "rebuild"  # retrain: the table outgrew the index, or the index is outdated
    DROP = "drop"  # the table shrank well below the threshold: back to exact search


@dataclass(frozen=True, slots=True)
class IndexState:
    """What the chunks table and its vector index look like now."""

    rows: int
    has_index: bool
    unindexed_rows: int = 0
    trained_rows: int = 0  # table size when the index was last trained (0: unknown)
    version: int = INDEX_VERSION  # INDEX_VERSION of the code that built it
    segments: int = 1  # the index as trained, plus one delta per fold


@dataclass(frozen=True, slots=True)
class AnnPolicy:
    threshold: int = DEFAULT_THRESHOLD_ROWS
    # Unindexed rows are scanned flat on every query: fold them in past this share of the table
    # (with a ceiling, so a big table never scans more than that many rows flat).
    fold_fraction: float = 0.05
    fold_max_rows: int = 10_000
    # Retrain once the table is this many times the size the index was trained at.
    regrow_factor: float = 2.0
    # Every fold adds a delta segment that each query searches on its own, and the data files
    # of different segments are never merged by compaction: retrain (one segment again) past
    # this many. Measured at 1M rows: 28 segments 35 ms, retrained 20 ms, then compacted 15 ms.
    max_segments: int = 8
    # Drop the index when the table falls below this share of the threshold (hysteresis, so a
    # table hovering around the threshold is not indexed and dropped over and over).
    drop_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the ANN threshold must be at least 1 row")
        if self.max_segments < 1:
            raise ValueError("max_segments must be at least 1")
        if self.regrow_factor <= 1.0:
            raise ValueError("regrow_factor must be greater than 1")
        if not 0.0 < self.fold_fraction <= 1.0:
            raise ValueError("fold_fraction must be in (0, 1]")
        if not 0.0 <= self.drop_fraction <= 1.0:
            raise ValueError("drop_fraction must be in [0, 1]")

    def plan(self, state: IndexState) -> AnnAction:
        if not state.has_index:
            return AnnAction.CREATE if state.rows >= self.threshold else AnnAction.NONE
        if state.rows < self.threshold * self.drop_fraction:
            return AnnAction.DROP
        if state.version != INDEX_VERSION:
            return AnnAction.REBUILD
        trained = state.trained_rows or max(state.rows - state.unindexed_rows, 1)
        if state.rows >= trained * self.regrow_factor or state.segments > self.max_segments:
            return AnnAction.REBUILD
        if state.unindexed_rows >= self.fold_at(state.rows - state.unindexed_rows):
            return AnnAction.FOLD
        return AnnAction.NONE

    def fold_at(self, indexed_rows: int) -> int:
        """Unindexed rows worth an ``optimize`` for an index that covers ``indexed_rows``."""
        share = math.ceil(max(indexed_rows, 0) * self.fold_fraction)
        return min(self.fold_max_rows, max(1, share))


@dataclass(frozen=True, slots=True)
class SearchParams:
    """Per-query knobs for an indexed table (ignored by LanceDB when there is no index)."""

    partitions: int  # IVF partitions to probe
    refine_factor: int  # candidates re-scored exactly: k * refine_factor


def partitions_for(rows: int) -> int:
    """IVF partitions for a table of ``rows``: about sqrt(rows), so a query's two scans (over
    the centroids, then over the probed partitions) stay balanced as the table grows."""
    return max(8, min(4096, round(math.sqrt(max(rows, 1)))))


def index_config(rows: int) -> Any:
    """The LanceDB vector index for a table of ``rows``: IVF with RaBitQ codes (1 bit per
    dimension, 48 bytes a 384-d vector), cosine distance. Measured against IVF-PQ, IVF-SQ and
    IVF-HNSW-SQ in benchmarks/query_latency.py's docstring: the fastest to build and to search,
    the smallest, and as accurate once candidates are re-scored with the stored vectors."""
    from lancedb.index import IvfRq

    return IvfRq(distance_type="cosine", num_partitions=partitions_for(rows))


def search_params(trained_rows: int, k: int) -> SearchParams:
    # A third of the partitions: with real embeddings a query's neighbours spread over many of
    # them, and scanning 1-bit codes is cheap. Recall@10 (mean, worst query) at 30k rows: 1/16
    # 0.89, 1/5 0.98, 1/3 0.995 for the same 8 ms; at 1M: 1/5 0.983 (0.4), 1/3 0.989 (0.8) for
    # 1.5 ms more. The 1-bit codes rank roughly, so ~200 candidates are re-scored exactly.
    partitions = partitions_for(trained_rows)
    return SearchParams(
        partitions=max(20, partitions // 3),
        refine_factor=max(2, math.ceil(_RESCORED / max(k, 1))),
    )
