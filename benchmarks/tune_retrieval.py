"""Retrieval tuning grid: many fusion configs over cached candidate lists, no re-embedding.

    .venv/bin/python benchmarks/tune_retrieval.py             # SciFact train, SQuAD, Docugami
    .venv/bin/python benchmarks/tune_retrieval.py --datasets scifact --json out.json

Per dataset, the knowledge base is built once (the same layout ``almanac eval --kb`` uses, so the
CLI reuses it), then every query is embedded ONCE and both retrievers are asked ONCE for a deep
candidate list (``--depth``, 200) through ``Store.vector_search`` / ``Store.text_search``. Those
lists, the query vectors and every chunk's vector are cached under ``benchmarks/out/tune-cache``.
Each config in the grid then re-fuses the cached lists in numpy: a whole grid takes seconds.

The ``product`` rows go through ``almanac.core.retrieval.retrieval.fuse`` (what ``Searcher.search``
runs)
on the same cached lists, so the shipped defaults are measured by the shipped code.

Datasets (never SciFact test: it is reported once, untuned, by ``retrieval_quality.py``):
  scifact   BEIR SciFact train queries over the 5,183 abstracts (the KB cached by
            ``retrieval_quality.py``: benchmarks/out/scifact-kb-*/kb)
  squad     SQuAD v1.1 dev: all 2,067 paragraphs; a seeded sample of ``--squad-queries`` questions
  docugami  Docugami SEC 10-Q: 20 PDFs, 195 questions labelled with source files
Metrics are document-level (a document ranks at its best chunk), as in ``almanac eval``.

``--chunking TARGET/OVERLAP`` and ``--embedder int8`` measure another chunking or the int8 backend:
each such variant gets its own knowledge bases (``<kb>-t<TARGET>o<OVERLAP>-<embedder>``), built
from the same sources, so the grid compares like with like. Building one prints its ingest time
and chunk count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from _common import OUT_DIR, add_eval_dir_arg, print_table, safe_name, save_json
from almanac.core.embedding.embedding import Embedder, SentenceTransformerEmbedder
from almanac.core.evaluation import eval as ev
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.retrieval.retrieval import RetrievalConfig, fuse, text_confidence
from almanac.core.store.lexical import LEXICAL_VERSION
from almanac.core.store.store import Store, StoredChunk

CACHE_FORMAT = 2
CACHE_DIR = OUT_DIR / "tune-cache"


# -- cached candidates ----------------------------------------------------------------------------


@dataclass
class QueryData:
    qid: str
    text: str
    relevant: frozenset[str]
    qvec: np.ndarray
    vec_idx: np.ndarray  # chunk row indices, best first
    vec_score: np.ndarray  # cosine
    txt_idx: np.ndarray
    txt_score: np.ndarray  # BM25


@dataclass
class DatasetCache:
    name: str
    chunk_ids: list[str]
    chunk_doc: np.ndarray  # doc index per chunk row (-1: not in the labelled set)
    chunk_ordinal: np.ndarray
    vectors: np.ndarray  # (chunks, dim), normalized
    doc_ids: list[str]
    queries: list[QueryData]


@dataclass(frozen=True)
class Variant:
    """How the knowledge bases are built: the defaults are the cached fp32 KBs' settings."""

    target_tokens: int = ChunkingConfig().target_tokens
    overlap_tokens: int = ChunkingConfig().overlap_tokens
    embedder: str = "fp32"

    @property
    def tag(self) -> str:
        if self == Variant():
            return ""
        return f"-t{self.target_tokens}o{self.overlap_tokens}-{self.embedder}"

    def kb(self, default: Path) -> Path:
        if not self.tag:
            return default
        return default.parent.with_name(default.parent.name + self.tag) / default.name

    def make_embedder(self) -> Embedder:
        if self.embedder == "int8":
            from almanac.app.environment import model_cache_dir
            from almanac.core.embedding.onnx_embedder import OnnxEmbedder

            return OnnxEmbedder(cache_dir=model_cache_dir())
        # The model itself (sentence-transformers, fp32), whatever the app's default backend:
        # the cached KBs were built with it, and queries must be embedded as their chunks were.
        return SentenceTransformerEmbedder(None)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kb: Path
    variant: Variant
    load: Callable[[], tuple[list[ev.EvalQuery], dict[str, str], Path | None]]
    # -> queries, {kb path: doc id}, folder to ingest when the KB is missing (None: must exist)


def _scifact_spec(eval_dir: Path, kb: Path | None, variant: Variant) -> DatasetSpec:
    if kb is None:
        found = sorted(p for p in OUT_DIR.glob("scifact-kb-*/kb") if (p.parent / "corpus").is_dir())
        if not found:
            sys.exit("no cached SciFact KB: run benchmarks/retrieval_quality.py once first")
        kb = found[0]
    corpus = kb.parent / "corpus"

    def load() -> tuple[list[ev.EvalQuery], dict[str, str], Path | None]:
        es = ev.load_beir(eval_dir / "scifact", "train")
        # As the knowledge base names files: absolute, forward slashes.
        mapping = {
            Path(os.path.abspath(corpus / f"{safe_name(d.id)}.md")).as_posix(): d.id
            for d in es.documents or []
        }
        return es.queries, mapping, corpus if variant.tag else None

    return DatasetSpec("scifact-train", variant.kb(kb), variant, load)


def _squad_spec(eval_dir: Path, n_queries: int, seed: int, variant: Variant) -> DatasetSpec:
    kb = variant.kb(OUT_DIR / "squad-kb" / "kb")

    def load() -> tuple[list[ev.EvalQuery], dict[str, str], Path | None]:
        es = ev.load_squad(eval_dir / "squad" / "dev-v1.1.json")
        mapping = ev.materialize(es, kb.parent / f"{kb.name}-docs")
        queries = list(es.queries)
        if n_queries < len(queries):
            queries = random.Random(seed).sample(queries, n_queries)
        return queries, mapping, kb.parent / f"{kb.name}-docs"

    return DatasetSpec(f"squad-dev-{n_queries}q", kb, variant, load)


def _docugami_spec(eval_dir: Path, variant: Variant) -> DatasetSpec:
    kb = variant.kb(OUT_DIR / "docugami-kb" / "kb")
    root = eval_dir / "docugami-sec-10-q" / "data" / "v1"

    def load() -> tuple[list[ev.EvalQuery], dict[str, str], Path | None]:
        es = ev.load_folder_csv(root / "docs", root / "qna_data.csv")
        return es.queries, ev.materialize(es, kb.parent / "unused"), root / "docs"

    return DatasetSpec("docugami", kb, variant, load)


def build_cache(spec: DatasetSpec, depth: int, refresh: bool) -> DatasetCache:
    queries, doc_of_path, source = spec.load()
    key = hashlib.sha256(
        json.dumps(
            [CACHE_FORMAT, LEXICAL_VERSION, depth, str(spec.kb), [q.id for q in queries]]
        ).encode()
    ).hexdigest()[:12]
    path = CACHE_DIR / f"{safe_name(spec.name)}-{key}.pkl"
    if path.is_file() and not refresh:
        return _load_cache(path)

    embedder = spec.variant.make_embedder()
    store = Store(spec.kb, dim=embedder.dim, embedder_name=embedder.name)
    if store.count_chunks() == 0:
        if source is None:
            sys.exit(f"{spec.name}: empty KB at {spec.kb}")
        print(f"{spec.name}: indexing {source} into {spec.kb} ...", flush=True)
        config = ChunkingConfig(
            target_tokens=spec.variant.target_tokens,
            overlap_tokens=spec.variant.overlap_tokens,
            max_tokens=embedder.max_tokens,
        )
        chunker = Chunker(embedder.count_tokens, config)
        report = Ingestor(store, embedder, chunker).ingest([source])
        print(
            f"{spec.name}: {report.chunks_embedded:,} chunks embedded in {report.seconds:.1f}s",
            flush=True,
        )
    t0 = time.perf_counter()
    table = store.all_chunk_rows(["id", "doc_path", "ordinal", "vector"])
    chunk_ids = [str(x) for x in table["id"].to_pylist()]
    row_of = {cid: i for i, cid in enumerate(chunk_ids)}
    doc_ids = sorted(set(doc_of_path.values()))
    doc_index = {d: i for i, d in enumerate(doc_ids)}
    chunk_doc = np.array(
        [doc_index.get(doc_of_path.get(str(p), ""), -1) for p in table["doc_path"].to_pylist()],
        dtype=np.int64,
    )
    ordinals = np.asarray(table["ordinal"].to_numpy(zero_copy_only=False), dtype=np.int64)
    flat = table["vector"].combine_chunks().values.to_numpy(zero_copy_only=False)
    vectors = np.asarray(flat, dtype=np.float32).reshape(len(chunk_ids), -1)
    data: list[QueryData] = []
    for q in queries:
        qvec = embedder.embed_query(q.text)  # one at a time, as Searcher.search does
        by_vec = store.vector_search(qvec, depth)
        by_txt = store.text_search(q.text, depth)
        data.append(
            QueryData(
                q.id,
                q.text,
                q.relevant,
                qvec,
                np.array([row_of[c.chunk_id] for c in by_vec], dtype=np.int64),
                np.array([c.score for c in by_vec], dtype=np.float64),
                np.array([row_of[c.chunk_id] for c in by_txt], dtype=np.int64),
                np.array([c.score for c in by_txt], dtype=np.float64),
            )
        )
    print(
        f"{spec.name}: cached {len(data)} queries x depth {depth} over "
        f"{len(chunk_ids):,} chunks in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )
    cache = DatasetCache(spec.name, chunk_ids, chunk_doc, ordinals, vectors, doc_ids, data)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    _save_cache(cache, path)
    return cache


def _save_cache(cache: DatasetCache, path: Path) -> None:
    # Plain containers only: a pickle of this module's classes would not load from elsewhere.
    plain = {
        "name": cache.name,
        "chunk_ids": cache.chunk_ids,
        "chunk_doc": cache.chunk_doc,
        "chunk_ordinal": cache.chunk_ordinal,
        "vectors": cache.vectors,
        "doc_ids": cache.doc_ids,
        "queries": [
            (
                q.qid,
                q.text,
                sorted(q.relevant),
                q.qvec,
                q.vec_idx,
                q.vec_score,
                q.txt_idx,
                q.txt_score,
            )
            for q in cache.queries
        ],
    }
    with open(path, "wb") as f:
        pickle.dump(plain, f, protocol=pickle.HIGHEST_PROTOCOL)


def _load_cache(path: Path) -> DatasetCache:
    with open(path, "rb") as f:
        plain = pickle.load(f)
    queries = [
        QueryData(qid, text, frozenset(rel), qvec, vi, vs, ti, ts)
        for qid, text, rel, qvec, vi, vs, ti, ts in plain["queries"]
    ]
    return DatasetCache(
        plain["name"],
        plain["chunk_ids"],
        plain["chunk_doc"],
        plain["chunk_ordinal"],
        plain["vectors"],
        plain["doc_ids"],
        queries,
    )


# -- ranking variants -----------------------------------------------------------------------------

Ranker = Callable[[DatasetCache, QueryData], list[int]]  # -> doc indices, best first


def _docs_of_chunks(cache: DatasetCache, rows: Iterable[int]) -> list[int]:
    """Documents in order of their first chunk (as ``almanac.core.evaluation.eval.doc_ranking``)."""
    seen: dict[int, None] = {}
    for row in rows:
        doc = int(cache.chunk_doc[row])
        if doc >= 0:
            seen.setdefault(doc, None)
    return list(seen)


class ProductLists:
    """The cached candidate lists as ``StoredChunk`` objects, to feed the product's ``fuse``."""

    def __init__(self, cache: DatasetCache) -> None:
        self.cache = cache
        self.row_of = {cid: i for i, cid in enumerate(cache.chunk_ids)}
        self._lists: dict[str, tuple[list[StoredChunk], list[StoredChunk]]] = {}

    def _chunk(self, row: int, score: float, with_vector: bool) -> StoredChunk:
        c = self.cache
        return StoredChunk(
            chunk_id=c.chunk_ids[row],
            doc_path=str(c.chunk_doc[row]),
            text="",
            heading="",
            page=None,
            start=0,
            end=0,
            score=score,
            vector=c.vectors[row] if with_vector else None,
        )

    def lists(self, q: QueryData) -> tuple[list[StoredChunk], list[StoredChunk]]:
        if q.qid not in self._lists:
            self._lists[q.qid] = (
                [
                    self._chunk(int(r), float(s), False)
                    for r, s in zip(q.vec_idx, q.vec_score, strict=True)
                ],
                [
                    self._chunk(int(r), float(s), True)
                    for r, s in zip(q.txt_idx, q.txt_score, strict=True)
                ],
            )
        return self._lists[q.qid]


def product(lists: ProductLists, config: RetrievalConfig) -> Ranker:
    """``almanac.core.retrieval.retrieval.fuse`` with ``config`` over the first ``candidates`` of
    each list
    (what ``Searcher.search`` asks the store for)."""

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        by_vector, by_text = lists.lists(q)
        n = config.candidates
        fused = fuse(by_vector[:n], by_text[:n], q.qvec, config)
        return _docs_of_chunks(cache, (lists.row_of[c.chunk.chunk_id] for c in fused))

    return rank


def single(which: str, n: int) -> Ranker:
    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        return _docs_of_chunks(cache, (q.vec_idx if which == "vector" else q.txt_idx)[:n])

    return rank


def _pool(cache: DatasetCache, q: QueryData, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of both top-n lists: rows, exact cosine, BM25 (0 where the text list lacks it)."""
    rows = np.array(list(dict.fromkeys([*q.vec_idx[:n].tolist(), *q.txt_idx[:n].tolist()])))
    cos = cache.vectors[rows] @ q.qvec
    bm25 = dict(zip(q.txt_idx[:n].tolist(), q.txt_score[:n].tolist(), strict=True))
    return rows, cos.astype(np.float64), np.array([bm25.get(r, 0.0) for r in rows.tolist()])


def _order(rows: np.ndarray, score: np.ndarray) -> list[int]:
    return [int(rows[i]) for i in np.argsort(-score, kind="stable")]


def convex_normalized(n: int, alpha: float, norm: str) -> Ranker:
    """Convex fusion with each retriever's scores rescaled per query by ``norm``:
    minmax (over its own list) or z (standardized over its own list)."""

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        rows, cos, bm25 = _pool(cache, q, n)
        in_text = np.isin(rows, q.txt_idx[:n])
        vs, ts = q.vec_score[:n], q.txt_score[:n]
        if norm == "minmax":
            ncos = (cos - vs.min()) / (np.ptp(vs) + 1e-9)
            nbm = np.where(in_text, (bm25 - ts.min()) / (np.ptp(ts) + 1e-9), 0.0)
        else:
            ncos = (cos - vs.mean()) / (vs.std() + 1e-9)
            low = (ts.min() - ts.mean()) / (ts.std() + 1e-9)
            nbm = np.where(in_text, (bm25 - ts.mean()) / (ts.std() + 1e-9), low)
        return _docs_of_chunks(cache, _order(rows, alpha * ncos + (1 - alpha) * nbm))

    return rank


def doc_level_rrf(n: int, k: float) -> Ranker:
    """RRF over DOCUMENT ranks: each list collapsed to its documents before fusing."""

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        score: dict[int, float] = {}
        for rows in (q.vec_idx[:n], q.txt_idx[:n]):
            for r, doc in enumerate(_docs_of_chunks(cache, rows)):
                score[doc] = score.get(doc, 0.0) + 1.0 / (k + r + 1)
        return sorted(score, key=lambda d: -score[d])

    return rank


def _convex_pool(
    cache: DatasetCache, q: QueryData, cfg: RetrievalConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The shipped convex fusion, vectorized: candidate rows and their fused scores."""
    rows, cos, bm25 = _pool(cache, q, cfg.candidates)
    top = q.txt_score[: cfg.candidates]
    best = float(top[0]) if len(top) else 0.0
    weight = cfg.text_weight * text_confidence(top.tolist(), cfg.text_peak_depth)
    text = bm25 / best if best > 0 else bm25
    return rows, cfg.vector_weight * cos + weight * text


def doc_sum(cfg: RetrievalConfig, beta: float) -> Ranker:
    """A document scores its best chunk plus ``beta`` times the sum of its other chunks."""

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        rows, score = _convex_pool(cache, q, cfg)
        total: dict[int, float] = {}
        for i in np.argsort(-score, kind="stable").tolist():
            doc = int(cache.chunk_doc[rows[i]])
            if doc >= 0:
                total[doc] = total[doc] + beta * score[i] if doc in total else score[i]
        return sorted(total, key=lambda d: -total[d])

    return rank


def doc_mean_vector(cfg: RetrievalConfig, gamma: float) -> Ranker:
    """Best chunk's fused score, blended with the cosine of the document's mean chunk vector."""
    means: dict[str, np.ndarray] = {}

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        if cache.name not in means:
            m = np.zeros((len(cache.doc_ids), cache.vectors.shape[1]), dtype=np.float64)
            ok = cache.chunk_doc >= 0
            np.add.at(m, cache.chunk_doc[ok], cache.vectors[ok])
            means[cache.name] = m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-9)
        rows, score = _convex_pool(cache, q, cfg)
        best: dict[int, float] = {}
        for row, s in zip(rows.tolist(), score.tolist(), strict=True):
            doc = int(cache.chunk_doc[row])
            if doc >= 0 and s > best.get(doc, -np.inf):
                best[doc] = s
        docs = np.array(list(best))
        dcos = means[cache.name][docs] @ q.qvec
        total = {
            int(d): (1 - gamma) * best[int(d)] + gamma * cfg.vector_weight * float(x)
            for d, x in zip(docs, dcos, strict=True)
        }
        return sorted(total, key=lambda d: -total[d])

    return rank


def mmr(cfg: RetrievalConfig, lam: float, top: int = 30) -> Ranker:
    """Maximal marginal relevance over the top chunks of the fused list."""

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        rows, score = _convex_pool(cache, q, cfg)
        order = np.argsort(-score, kind="stable")
        head, tail = order[:top], order[top:]
        vecs = cache.vectors[rows[head]]
        chosen: list[int] = []
        left = list(range(len(head)))
        while left:
            sim = (vecs[left] @ vecs[chosen].T).max(axis=1) if chosen else np.zeros(len(left))
            value = lam * score[head[left]] - (1 - lam) * sim
            chosen.append(left.pop(int(np.argmax(value))))
        picked = [int(rows[head[j]]) for j in chosen] + [int(rows[i]) for i in tail]
        return _docs_of_chunks(cache, picked)

    return rank


def vector_prf(cfg: RetrievalConfig, m: int, beta: float) -> Ranker:
    """Rocchio feedback: a second vector search with the query moved toward the top ``m`` fused
    chunks (exact search in numpy, as the store's flat search)."""

    def rank(cache: DatasetCache, q: QueryData) -> list[int]:
        rows, score = _convex_pool(cache, q, cfg)
        top = rows[np.argsort(-score, kind="stable")[:m]]
        v = q.qvec + beta * cache.vectors[top].mean(axis=0)
        v = (v / np.linalg.norm(v)).astype(np.float32)
        cos = cache.vectors @ v
        vi = np.argsort(-cos)[: cfg.candidates]
        moved = replace(q, qvec=v, vec_idx=vi, vec_score=cos[vi].astype(np.float64))
        rows2, score2 = _convex_pool(cache, moved, cfg)
        return _docs_of_chunks(cache, _order(rows2, score2))

    return rank


# -- scoring --------------------------------------------------------------------------------------


def score(cache: DatasetCache, ranker: Ranker) -> dict[str, float]:
    sums = {"ndcg@10": 0.0, "recall@5": 0.0, "recall@10": 0.0, "mrr@10": 0.0}
    for q in cache.queries:
        ranked = [cache.doc_ids[d] for d in ranker(cache, q)]
        sums["ndcg@10"] += ev.ndcg_at_k(ranked, q.relevant, 10)
        sums["recall@5"] += ev.recall_at_k(ranked, q.relevant, 5)
        sums["recall@10"] += ev.recall_at_k(ranked, q.relevant, 10)
        sums["mrr@10"] += ev.mrr_at_k(ranked, q.relevant, 10)
    n = max(len(cache.queries), 1)
    return {k: v / n for k, v in sums.items()}


def grid(lists: ProductLists) -> list[tuple[str, Ranker]]:
    """The configs measured, as (label, ranker). ``*`` marks the shipped defaults."""
    default = RetrievalConfig()
    rrf = replace(default, fusion="rrf", vector_weight=1.0, text_weight=1.0)
    out: list[tuple[str, Ranker]] = [
        ("vector only, 100 chunks", single("vector", 100)),
        ("BM25 only, 100 chunks", single("text", 100)),
        ("rrf k=60 n=50 1:1 (previous default)", product(lists, replace(rrf, candidates=50))),
    ]
    for n in (50, 100, 200):
        for k in (10.0, 60.0):
            if (n, k) != (50, 60.0):  # the previous default, above
                cfg = replace(rrf, candidates=n, rrf_k=k)
                out.append((f"rrf k={k:g} n={n} 1:1", product(lists, cfg)))
    for wv, wt in ((1.0, 0.5), (0.5, 1.0)):
        cfg = replace(rrf, candidates=100, rrf_k=10.0, vector_weight=wv, text_weight=wt)
        out.append((f"rrf k=10 n=100 {wv:g}:{wt:g}", product(lists, cfg)))
    out.append(("doc-level rrf k=10 n=100", doc_level_rrf(100, 10.0)))
    flat = replace(default, text_peak_depth=None)
    for a in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
        cfg = replace(flat, vector_weight=a, text_weight=round(1 - a, 4))
        out.append((f"convex a={a:g} n={cfg.candidates}, BM25 weight fixed", product(lists, cfg)))
    for depth in (5, 10, 20):
        for a in (0.6, 0.65, 0.7):
            cfg = replace(default, vector_weight=a, text_weight=round(1 - a, 4))
            cfg = replace(cfg, text_peak_depth=depth)
            star = " *" if cfg == default else ""
            label = f"convex a={a:g} n={cfg.candidates}, BM25 damped (depth {depth}){star}"
            out.append((label, product(lists, cfg)))
    for n in (50, 200):
        out.append((f"default, n={n}", product(lists, replace(default, candidates=n))))
    for norm in ("minmax", "z"):
        for a in (0.4, 0.5):
            out.append((f"convex {norm}-normalized a={a:g} n=100", convex_normalized(100, a, norm)))
    out.append(("default + doc score sums other chunks x0.2", doc_sum(default, 0.2)))
    out.append(("default + doc mean-vector cosine g=0.2", doc_mean_vector(default, 0.2)))
    out.append(("default + MMR lambda=0.9 over top 30", mmr(default, 0.9)))
    out.append(("default + vector PRF m=1 beta=0.3", vector_prf(default, 1, 0.3)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_dir_arg(p)
    p.add_argument(
        "--datasets", default="scifact,squad,docugami", help="comma-separated (default: all three)"
    )
    p.add_argument(
        "--scifact-kb", type=Path, default=None, help="default: benchmarks/out/scifact-kb-*/kb"
    )
    p.add_argument("--squad-queries", type=int, default=1000, help="sampled SQuAD questions (1000)")
    p.add_argument("--seed", type=int, default=13, help="SQuAD sample seed")
    p.add_argument("--depth", type=int, default=200, help="cached candidates per retriever (200)")
    p.add_argument("--refresh", action="store_true", help="rebuild the candidate caches")
    p.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="save the figures as JSON"
    )
    p.add_argument(
        "--chunking",
        default=f"{ChunkingConfig().target_tokens}/{ChunkingConfig().overlap_tokens}",
        metavar="TARGET/OVERLAP",
        help="chunk target and overlap in tokens (default: the app's)",
    )
    p.add_argument("--embedder", choices=["fp32", "int8"], default="fp32", help="KB backend (fp32)")
    args = p.parse_args(argv)
    try:
        target, overlap = (int(x) for x in args.chunking.split("/"))
    except ValueError:
        p.error("--chunking takes TARGET/OVERLAP, e.g. 160/32")
    variant = Variant(target, overlap, args.embedder)
    specs = {
        "scifact": lambda: _scifact_spec(args.eval_dir, args.scifact_kb, variant),
        "squad": lambda: _squad_spec(args.eval_dir, args.squad_queries, args.seed, variant),
        "docugami": lambda: _docugami_spec(args.eval_dir, variant),
    }
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in specs]
    if unknown or not names:
        p.error(f"unknown dataset(s): {', '.join(unknown)} (choose from {', '.join(specs)})")
    if args.depth < 200:
        p.error("--depth must be at least 200 (the deepest config in the grid)")
    caches = [build_cache(specs[n](), args.depth, args.refresh) for n in names]

    results: dict[str, dict[str, dict[str, float]]] = {}
    labels: list[str] = []
    t0 = time.perf_counter()
    for cache in caches:
        for label, ranker in grid(ProductLists(cache)):
            if label not in labels:
                labels.append(label)
            results.setdefault(label, {})[cache.name] = score(cache, ranker)
    elapsed = time.perf_counter() - t0
    headers = ["config"]
    for cache in caches:
        headers += [f"{cache.name} nDCG@10", "R@5", "R@10"]
    rows = [
        [label]
        + [
            v
            for cache in caches
            for v in (
                results[label][cache.name]["ndcg@10"],
                results[label][cache.name]["recall@5"],
                results[label][cache.name]["recall@10"],
            )
        ]
        for label in labels
    ]
    queries = ", ".join(
        f"{c.name}: {len(c.queries)} queries, {len(c.chunk_ids):,} chunks" for c in caches
    )
    print_table(f"Document-level retrieval ({queries})", headers, rows, digits=4)
    print(
        f"\n{len(labels)} configs x {len(caches)} datasets scored in {elapsed:.1f}s; * = defaults"
    )
    save_json(
        args.json,
        {
            "benchmark": "tune_retrieval",
            "defaults": repr(RetrievalConfig()),
            "datasets": {
                c.name: {"queries": len(c.queries), "chunks": len(c.chunk_ids)} for c in caches
            },
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
