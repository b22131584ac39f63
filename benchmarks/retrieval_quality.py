"""Retrieval quality on BEIR SciFact: nDCG@10 and Recall@10 over DOCUMENTS, three retrieval modes.

    .venv/bin/python benchmarks/retrieval_quality.py                  # train queries, full corpus
    .venv/bin/python benchmarks/retrieval_quality.py --docs 300 --queries 40  # smoke run
    .venv/bin/python benchmarks/retrieval_quality.py --json benchmarks/out/quality-train.json
    .venv/bin/python benchmarks/retrieval_quality.py --split test     # final, untuned figure only
    .venv/bin/python benchmarks/retrieval_quality.py --embedder int8 --compare-with fp32
    .venv/bin/python benchmarks/retrieval_quality.py --embedder fp32 --query-embedder int8

The corpus (5,183 abstracts as ``# {title}\\n\\n{text}`` Markdown) is ingested through the real
``Ingestor`` into a knowledge base cached under ``benchmarks/out/`` (keyed by a hash of the corpus
and the chunking config), so reruns are fast. Every run still calls ``Ingestor.ingest`` on the
cached folder: unchanged files cost a hash, and the ingestor's own pipeline fingerprint (reader,
lexical and chunking versions) re-reads a stale KB, reusing vectors by chunk hash. A change to the
chunker's code that bumps no version is not noticed: use ``--rebuild`` then.

Modes, each asked for ``--k-chunks`` (50) chunks, deduplicated to documents in rank order (a doc's
rank = its best chunk's rank), top 10 documents scored with binary relevance (BEIR qrels):
  vector  ``store.vector_search`` (all-MiniLM-L6-v2, cosine)
  bm25    ``store.text_search`` (LanceDB full-text index over heading + text)
  hybrid  ``Searcher.search(floor=-1)`` (``retrieval.fuse``; the floor drops nothing)
plus the hybrid at the app's default floor, and its null-retrieval rate (every SciFact query has a
relevant document, so each null answer is a miss).

``--embedder`` picks the backend that builds the KB (each backend has its own cached KB) and, unless
``--query-embedder`` says otherwise, embeds the queries: fp32 KB + int8 queries is what an old KB
sees after the switch to int8. ``--compare-with BACKEND`` also reports the cosine between this KB's
vectors and the other backend's cached KB, chunk by chunk (matched by chunk hash).

Tune on the train split (the default). The test split is for a final, untuned figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from _common import (
    OUT_DIR,
    REFERENCE_NDCG10,
    add_eval_dir_arg,
    dedupe,
    latency_summary,
    load_note,
    load_qrels,
    load_scifact_corpus,
    load_scifact_queries,
    machine_info,
    markdown_for,
    measure,
    ndcg_at_k,
    percentile,
    print_table,
    recall_at_k,
    safe_name,
    save_json,
    scifact_dir,
    write_scifact_folder,
)
from almanac.app.services import build_embedder, build_services
from almanac.core.embedding.embedding import DEFAULT_EMBEDDER_BACKEND, EMBEDDER_BACKENDS
from almanac.core.indexing.chunking import ChunkingConfig
from almanac.core.retrieval.retrieval import RetrievalConfig, Searcher
from almanac.core.store.store import Store

CUTOFF = 10
CACHE_FORMAT = 1  # bump when the corpus folder layout changes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d_chunk = ChunkingConfig()
    d_ret = RetrievalConfig()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_dir_arg(p)
    p.add_argument(
        "--split",
        default="train",
        choices=["train", "test"],
        help="qrels split (default train; test only for a final, untuned figure)",
    )
    p.add_argument(
        "--docs", type=int, default=None, help="use only the first N corpus docs (smoke runs)"
    )
    p.add_argument(
        "--queries", type=int, default=None, help="use only the first N queries of the split"
    )
    p.add_argument(
        "--k-chunks", type=int, default=50, help="chunks asked of each retriever (default 50)"
    )
    p.add_argument("--target-tokens", type=int, default=d_chunk.target_tokens)
    p.add_argument("--overlap-tokens", type=int, default=d_chunk.overlap_tokens)
    p.add_argument(
        "--candidates", type=int, default=d_ret.candidates, help="RetrievalConfig.candidates"
    )
    p.add_argument("--rrf-k", type=float, default=d_ret.rrf_k)
    p.add_argument("--vector-weight", type=float, default=d_ret.vector_weight)
    p.add_argument("--text-weight", type=float, default=d_ret.text_weight)
    p.add_argument(
        "--floor",
        type=float,
        default=d_ret.relevance_floor,
        help="the 'default' relevance floor to evaluate (default: RetrievalConfig's)",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=OUT_DIR, help=f"where KBs are cached (default {OUT_DIR})"
    )
    p.add_argument("--rebuild", action="store_true", help="drop the cached KB and ingest again")
    p.add_argument(
        "--embedder",
        choices=EMBEDDER_BACKENDS,
        default=DEFAULT_EMBEDDER_BACKEND,
        help=f"backend that builds the KB (default: the app's, {DEFAULT_EMBEDDER_BACKEND})",
    )
    p.add_argument(
        "--query-embedder",
        choices=EMBEDDER_BACKENDS,
        default=None,
        help="backend that embeds the queries (default: --embedder)",
    )
    p.add_argument(
        "--compare-with",
        choices=EMBEDDER_BACKENDS,
        default=None,
        metavar="BACKEND",
        help="cosine between this KB's vectors and that backend's cached KB (built beforehand)",
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="save the figures as JSON"
    )
    p.add_argument(
        "--per-query",
        type=Path,
        default=None,
        metavar="OUT",
        help="save per-query ranks and scores as JSON lines (for error analysis)",
    )
    return p.parse_args(argv)


def cache_key(args: argparse.Namespace, chunking: ChunkingConfig, backend: str) -> str:
    h = hashlib.sha256()
    h.update((scifact_dir(args.eval_dir) / "corpus.jsonl").read_bytes())
    h.update(f"docs={args.docs};format={CACHE_FORMAT};{chunking!r}".encode())
    # fp32 keeps the key it had before backends existed, so its cached KB stays valid.
    suffix = "" if backend == "fp32" else f"-{backend}"
    if backend != "fp32":
        # The exported model's own key (recipe, sources, versions): a new export means new
        # vectors, so a KB embedded by the previous one is not reused.
        from almanac.core.embedding.embedding import bundled_model_path
        from almanac.core.embedding.onnx_export import cache_key as export_key

        h.update(export_key(bundled_model_path(), backend).encode())
    return h.hexdigest()[:16] + suffix


def vector_agreement(store: Store, other_kb: Path) -> dict[str, float]:
    """Cosine between the vectors two KBs hold for the same chunk text (same chunk hash)."""
    import numpy as np

    other = Store.open_existing(other_kb)
    mine = store.all_chunk_rows(["chunk_hash", "vector"]).to_pydict()
    theirs = other.all_chunk_rows(["chunk_hash", "vector"]).to_pydict()
    by_hash = dict(zip(theirs["chunk_hash"], theirs["vector"], strict=True))
    pairs = [(v, by_hash[h]) for h, v in zip(mine["chunk_hash"], mine["vector"], strict=True)]
    pairs = [(a, b) for a, b in pairs if b is not None]
    if not pairs:
        return {"chunks": 0}
    a = np.asarray([p[0] for p in pairs], dtype=np.float32)
    b = np.asarray([p[1] for p in pairs], dtype=np.float32)
    cos = (a * b).sum(axis=1)
    return {
        "chunks": len(cos),
        "min": float(cos.min()),
        "p1": float(np.percentile(cos, 1)),
        "p5": float(np.percentile(cos, 5)),
        "mean": float(cos.mean()),
        "median": float(np.median(cos)),
        "below_0.99": int((cos < 0.99).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.split == "test":
        print(
            "WARNING: evaluating on the SciFact TEST split. Report it only as a final, "
            "untuned figure; "
            "never tune on it (use --split train).",
            file=sys.stderr,
            flush=True,
        )
    loads = [load_note("start")]

    chunking = ChunkingConfig(target_tokens=args.target_tokens, overlap_tokens=args.overlap_tokens)
    retrieval = RetrievalConfig(
        candidates=args.candidates,
        rrf_k=args.rrf_k,
        vector_weight=args.vector_weight,
        text_weight=args.text_weight,
        relevance_floor=args.floor,
    )
    key = cache_key(args, chunking, args.embedder)
    base = Path(args.cache_dir) / f"scifact-kb-{key}"
    query_backend = args.query_embedder or args.embedder
    if args.rebuild and base.exists():
        shutil.rmtree(base)
    corpus_dir, kb_dir = base / "corpus", base / "kb"

    docs = load_scifact_corpus(args.eval_dir, limit=args.docs)
    stem_to_id = {safe_name(d.doc_id): d.doc_id for d in docs}
    marker = base / "corpus.done"
    if not marker.is_file():
        write_scifact_folder(docs, corpus_dir)
        marker.write_text(
            json.dumps({"docs": len(docs), "chunking": repr(chunking)}), encoding="utf-8"
        )
    else:  # a cheap check that nobody edited the cached folder
        sample = docs[len(docs) // 2]
        if (corpus_dir / f"{safe_name(sample.doc_id)}.md").read_text(
            encoding="utf-8"
        ) != markdown_for(sample):
            sys.exit(
                f"cached corpus {corpus_dir} differs from the evaluation data; rerun with --rebuild"
            )

    with measure("model load") as load_phase:
        services = build_services(
            kb_dir, embedder_backend=args.embedder, chunking=chunking, retrieval=retrieval
        )
    embedder, store, searcher = services.embedder, services.store, services.searcher
    if query_backend != args.embedder:
        embedder = build_embedder(None, query_backend)
        searcher = Searcher(store, embedder, retrieval)
    print(f"KB built by the {args.embedder} embedder; queries by {query_backend}")
    if chunking.max_tokens != embedder.max_tokens:
        print(
            f"WARNING: chunking max_tokens {chunking.max_tokens} != "
            f"embedder's {embedder.max_tokens}",
            file=sys.stderr,
        )
    embedder.embed(["warm-up"])
    print(f"KB {kb_dir} (key {key}); model load {load_phase.wall:.1f}s", flush=True)

    loads.append(load_note("before ingest"))
    with measure("ingest") as ing:
        report = services.ingestor.ingest([corpus_dir])
    loads.append(load_note("after ingest"))
    agreement: dict[str, float] | None = None
    if args.compare_with:
        other = (
            Path(args.cache_dir)
            / (f"scifact-kb-{cache_key(args, chunking, args.compare_with)}")
            / "kb"
        )
        if other.is_dir():
            agreement = vector_agreement(store, other)
            print(
                f"vectors vs the {args.compare_with} KB: "
                + ", ".join(
                    f"{k} {v:.5f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in agreement.items()
                ),
                flush=True,
            )
        else:
            print(f"WARNING: no cached {args.compare_with} KB at {other}", file=sys.stderr)
    cached = report.chunks_embedded == 0 and report.added == 0 and report.updated == 0
    print(
        f"ingest: {'cached, ' if cached else ''}{report.added} added, "
        f"{report.unchanged} unchanged, "
        f"{len(report.failed)} failed, {report.chunks_embedded:,} chunks embedded "
        f"in {ing.wall:.1f}s "
        f"(load {ing.load}); KB holds {store.count_chunks():,} chunks",
        flush=True,
    )
    if report.failed:
        print(
            f"WARNING: {len(report.failed)} files failed, e.g. {report.failed[0]}", file=sys.stderr
        )

    qrels = load_qrels(args.eval_dir, args.split)
    texts = load_scifact_queries(args.eval_dir)
    known = set(stem_to_id.values())
    qids = [q for q in qrels if q in texts]
    if args.docs is not None:  # smoke runs: only queries whose relevant docs are in the subset
        qids = [q for q in qids if any(d in known for d in qrels[q])]
    if args.queries is not None:
        qids = qids[: args.queries]
    if not qids:
        sys.exit("no queries to evaluate")

    def doc_ids(paths: list[str]) -> list[str]:
        return dedupe(stem_to_id.get(Path(p).stem, Path(p).stem) for p in paths)

    k = args.k_chunks
    modes = ["vector", "bm25", "hybrid", "hybrid@floor"]
    ranked: dict[str, dict[str, list[str]]] = {m: {} for m in modes}
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    best_sim: dict[str, float | None] = {}
    loads.append(load_note("before queries"))
    with measure("queries") as qph:
        for qid in qids:
            text = texts[qid]
            t0 = time.perf_counter()
            qvec = embedder.embed_query(text)
            vec_hits = store.vector_search(qvec, k)
            t1 = time.perf_counter()
            bm_hits = store.text_search(text, k)
            t2 = time.perf_counter()
            hybrid = searcher.search(text, k=k, floor=-1.0)
            t3 = time.perf_counter()
            at_floor = searcher.search(text, k=k)
            t4 = time.perf_counter()
            ranked["vector"][qid] = doc_ids([h.doc_path for h in vec_hits])
            ranked["bm25"][qid] = doc_ids([h.doc_path for h in bm_hits])
            ranked["hybrid"][qid] = doc_ids([h.path for h in hybrid.hits])
            ranked["hybrid@floor"][qid] = (
                doc_ids([h.path for h in at_floor.hits]) if at_floor.relevant else []
            )
            for m, s in zip(modes, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                seconds[m].append(s)
            best_sim[qid] = hybrid.best_similarity
    loads.append(load_note("after queries"))

    rows = []
    figures: dict[str, dict] = {}
    labels = {
        "vector": "vector only (store.vector_search)",
        "bm25": "BM25 only (store.text_search)",
        "hybrid": "hybrid (Searcher.search, floor=-1)",
        "hybrid@floor": f"hybrid at floor {args.floor:g} (null = miss)",
    }
    for m in modes:
        nd = [ndcg_at_k(ranked[m][q], qrels[q], CUTOFF) for q in qids]
        rc = [recall_at_k(ranked[m][q], qrels[q], CUTOFF) for q in qids]
        pool = [recall_at_k(ranked[m][q], qrels[q], len(ranked[m][q]) or 1) for q in qids]
        short = sum(1 for q in qids if len(ranked[m][q]) < CUTOFF)
        lat = latency_summary(seconds[m])
        figures[m] = {
            "ndcg@10": sum(nd) / len(nd),
            "recall@10": sum(rc) / len(rc),
            "recall@pool": sum(pool) / len(pool),
            "queries_short_of_10_docs": short,
            "mean_docs": sum(len(ranked[m][q]) for q in qids) / len(qids),
            **lat,
        }
        f = figures[m]
        rows.append(
            [
                labels[m],
                f["ndcg@10"],
                f["recall@10"],
                f["recall@pool"],
                f["mean_docs"],
                short,
                f["mean_ms"],
            ]
        )
    for name, value in REFERENCE_NDCG10.items():
        rows.append([f"reference (issue, test split): {name}", value, "", "", "", "", ""])
    print_table(
        f"SciFact {args.split} (KB {args.embedder}, queries {query_backend}): "
        f"{len(qids)} queries, {len(docs):,} docs, "
        f"{store.count_chunks():,} chunks; "
        f"doc-level from top {k} chunks; binary relevance",
        ["mode", "nDCG@10", "R@10", f"R@{k}ch", "docs/q", "<10 docs", "ms/q"],
        rows,
        digits=3,
    )

    sims = [s for s in best_sim.values() if s is not None]
    none_best = sum(1 for s in best_sim.values() if s is None)
    floors = sorted({args.floor, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5})
    null_rows = [
        [
            f"{fl:g}" + (" (default)" if fl == args.floor else ""),
            sum(1 for s in best_sim.values() if s is None or s < fl),
            100.0 * sum(1 for s in best_sim.values() if s is None or s < fl) / len(qids),
        ]
        for fl in floors
    ]
    print_table(
        "Hybrid null-retrieval (best cosine below the floor) - every query here has a relevant doc",
        ["floor", "null queries", "% of queries"],
        null_rows,
        digits=1,
    )
    print(
        f"best cosine per query: min {min(sims):.3f}, p5 {percentile(sims, 5):.3f}, "
        f"p50 {percentile(sims, 50):.3f}, p95 {percentile(sims, 95):.3f}; "
        f"{none_best} with no vector hit"
    )
    print(
        f"ingest {ing.wall:.1f}s{' (cached)' if cached else ''}, load {ing.load}; "
        f"queries {qph.wall:.1f}s, load {qph.load}. Model load {load_phase.wall:.1f}s."
    )

    if args.per_query:
        args.per_query.parent.mkdir(parents=True, exist_ok=True)
        with open(args.per_query, "w", encoding="utf-8") as f:
            for q in qids:
                f.write(
                    json.dumps(
                        {
                            "qid": q,
                            "query": texts[q],
                            "relevant": sorted(qrels[q]),
                            "best_similarity": best_sim[q],
                            **{m: ranked[m][q][:CUTOFF] for m in modes},
                        }
                    )
                    + "\n"
                )
        print(f"per-query results saved to {args.per_query}")
    save_json(
        args.json,
        {
            "benchmark": "retrieval_quality",
            "split": args.split,
            "machine": machine_info(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "kb": str(kb_dir),
            "embedder": args.embedder,
            "query_embedder": query_backend,
            "vector_agreement": agreement,
            "chunking": repr(chunking),
            "retrieval": repr(retrieval),
            "queries": len(qids),
            "docs": len(docs),
            "chunks": store.count_chunks(),
            "ingest": {
                "cached": cached,
                "wall_s": ing.wall,
                "report_seconds": report.seconds,
                "timings": report.timings,
                "chunks_embedded": report.chunks_embedded,
            },
            "metrics": figures,
            "null_rate": {r[0]: r[2] for r in null_rows},
            "best_similarity": {
                "min": min(sims),
                "p5": percentile(sims, 5),
                "p50": percentile(sims, 50),
            },
            "reference_ndcg10_test": REFERENCE_NDCG10,
            "load": loads,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
