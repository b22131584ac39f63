"""Query latency of ``Searcher.search`` and of the store's vector-only and text-only calls.

    .venv/bin/python benchmarks/query_latency.py                          # 10k and 100k chunks
    .venv/bin/python benchmarks/query_latency.py --sizes 2000 --queries 30  # smoke run
    .venv/bin/python benchmarks/query_latency.py --json benchmarks/out/query.json

Knowledge bases are built FAST, without the embedding model: real passages (SciFact abstracts cut at
sentences, SQuAD paragraphs; cycled) are written through ``Store.write_documents`` with RANDOM
normalized 384-d vectors, 1,000 chunks per synthetic document, then ``Store.ensure_indexes()``.
The vectors carry no meaning, so these figures are for LATENCY ONLY, never for quality.

Queries are real SciFact claims; every query is embedded by the real model inside ``search``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (
    add_eval_dir_arg,
    instrument,
    latency_summary,
    load_note,
    load_scifact_queries,
    machine_info,
    measure,
    passage_pool,
    print_table,
    save_json,
)
from almanac.app import build_services
from almanac.core.chunking import chunk_hash, embedding_text
from almanac.core.embedding import SentenceTransformerEmbedder
from almanac.core.records import Chunk, DocumentInfo, DocumentStatus
from almanac.core.retrieval import RetrievalConfig, Searcher
from almanac.core.store import DocumentWrite, Store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_dir_arg(p)
    p.add_argument(
        "--sizes",
        default="10000,100000",
        help="chunk counts, comma-separated (default 10000,100000)",
    )
    p.add_argument("--queries", type=int, default=200, help="timed queries per size (default 200)")
    p.add_argument(
        "--warmup", type=int, default=10, help="untimed warm-up queries per size (default 10)"
    )
    p.add_argument("--k", type=int, default=8, help="k for Searcher.search (default 8, the app's)")
    p.add_argument(
        "--candidates",
        type=int,
        default=RetrievalConfig().candidates,
        help="k for the vector-only / text-only store calls (default: RetrievalConfig.candidates)",
    )
    p.add_argument(
        "--chunks-per-doc",
        type=int,
        default=1000,
        help="chunks per synthetic document (default 1000)",
    )
    p.add_argument(
        "--docs-per-write",
        type=int,
        default=10,
        help="documents per write_documents call, i.e. per commit (default 10)",
    )
    p.add_argument("--compact", action="store_true", help="run Store.compact() before querying")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for query embedding (default: the app's, physical cores)",
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--work-dir", type=Path, default=None, help="where to build the KBs (default: under /tmp)"
    )
    p.add_argument("--keep", action="store_true", help="keep the KBs afterwards")
    p.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="save the figures as JSON"
    )
    return p.parse_args(argv)


def build_kb(
    store: Store,
    size: int,
    pool: list[tuple[str, str]],
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> dict:
    dim = store.dim
    per_doc = args.chunks_per_doc
    n_docs = (size + per_doc - 1) // per_doc
    cursor = 0
    writes: list[DocumentWrite] = []
    write_s = 0.0
    commits = 0
    now = time.time()

    def flush() -> None:
        nonlocal write_s, commits, writes
        if writes:
            t0 = time.perf_counter()
            store.write_documents(writes)
            write_s += time.perf_counter() - t0
            commits += 1
            writes = []

    with measure("build") as build:
        for d in range(n_docs):
            count = min(per_doc, size - d * per_doc)
            path = f"/synthetic/kb-{size}/doc-{d:05d}.md"
            chunks: list[Chunk] = []
            offset = 0
            for ordinal in range(count):
                heading, text = pool[cursor % len(pool)]
                cursor += 1
                heading_path = (heading,) if heading else ()
                chunks.append(
                    Chunk(
                        doc_path=path,
                        ordinal=ordinal,
                        text=text,
                        heading_path=heading_path,
                        page=None,
                        start=offset,
                        end=offset + len(text),
                        chunk_hash=chunk_hash(embedding_text(heading_path, text)),
                    )
                )
                offset += len(text) + 2
            vectors = rng.standard_normal((count, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            info = DocumentInfo(
                path,
                "/synthetic",
                path.rsplit("/", 1)[1],
                f"{d:064x}",
                offset,
                now,
                "md",
                DocumentStatus.INDEXED,
                "",
                count,
                now,
            )
            writes.append(DocumentWrite(info, chunks, vectors))
            if len(writes) >= args.docs_per_write:
                flush()
        flush()
        t0 = time.perf_counter()
        store.ensure_indexes()
        index_s = time.perf_counter() - t0
        compact_s = float("nan")
        if args.compact:
            t0 = time.perf_counter()
            store.compact()
            compact_s = time.perf_counter() - t0
    try:  # a private attribute: a benchmark may look, but must not break when it changes
        stats = store._chunks.stats()
    except Exception:
        stats = {}
    return {
        "rows": store.count_chunks(),
        "docs": n_docs,
        "commits": commits,
        "build_s": build.wall,
        "write_s": write_s,
        "fts_index_s": index_s,
        "compact_s": compact_s,
        "fragments": stats.get("fragment_stats", {}).get("num_fragments"),
        "total_mb": stats.get("total_bytes", 0) / 1e6,
        "load": build.load,
    }


def time_calls(fn, items) -> list[float]:
    out: list[float] = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def bench_size(
    store: Store,
    embedder: SentenceTransformerEmbedder,
    queries: list[str],
    warm: list[str],
    args: argparse.Namespace,
) -> dict:
    searcher = Searcher(store, embedder, RetrievalConfig(candidates=args.candidates))
    n = args.candidates
    for q in warm:  # warm-up: caches, index pages, model
        searcher.search(q, k=args.k, floor=-1.0)
        store.vector_search(embedder.embed_query(q), n)
        store.text_search(q, n)

    results: dict[str, dict] = {}
    # Full hybrid search, with a per-component split from timing wrappers.
    with (
        instrument(embedder, "embed") as e_t,
        instrument(store, "vector_search", "text_search") as s_t,
        measure("search") as ph,
    ):
        samples = time_calls(lambda q: searcher.search(q, k=args.k, floor=-1.0), queries)
    results["Searcher.search (hybrid)"] = {
        **latency_summary(samples),
        "load": ph.load,
        "cpu_per_wall": ph.cpu_per_wall,
    }
    split = {
        "  embed_query": e_t["embed"].samples,
        "  vector_search": s_t["vector_search"].samples,
        "  text_search": s_t["text_search"].samples,
    }
    for name, vals in split.items():
        results[name] = {**latency_summary(vals), "load": ph.load, "cpu_per_wall": float("nan")}
    # Whatever isn't embedding or vector search: fusion, Python, and waiting for the text search
    # when it runs longer than the embedding it overlaps with (or all of it, when sequential).
    sequential = [v for k, v in split.items() if "text_search" not in k]
    if all(len(v) == len(samples) for v in sequential):
        rest = [s - sum(parts) for s, *parts in zip(samples, *sequential, strict=True)]
        results["  rest (text wait, fusion, python)"] = {
            **latency_summary(rest),
            "load": ph.load,
            "cpu_per_wall": float("nan"),
        }

    # Store calls alone (query vectors precomputed).
    qvecs = [embedder.embed_query(q) for q in queries]
    with measure("vector") as ph:
        samples = time_calls(lambda v: store.vector_search(v, n), qvecs)
    results[f"store.vector_search k={n}"] = {
        **latency_summary(samples),
        "load": ph.load,
        "cpu_per_wall": ph.cpu_per_wall,
    }
    with measure("text") as ph:
        samples = time_calls(lambda q: store.text_search(q, n), queries)
    results[f"store.text_search k={n}"] = {
        **latency_summary(samples),
        "load": ph.load,
        "cpu_per_wall": ph.cpu_per_wall,
    }
    with measure("embed") as ph:
        samples = time_calls(embedder.embed_query, queries)
    results["embedder.embed_query"] = {
        **latency_summary(samples),
        "load": ph.load,
        "cpu_per_wall": ph.cpu_per_wall,
    }
    # A bare count_rows(): every vector_search starts with one (read consistency interval 0).
    with measure("count") as ph:
        samples = time_calls(lambda _q: store.count_chunks(), queries)
    results["store.count_chunks()"] = {
        **latency_summary(samples),
        "load": ph.load,
        "cpu_per_wall": ph.cpu_per_wall,
    }
    # Not a query call, but its cost grows with the KB like the others: the Ingestor looks up
    # every window of new chunk hashes (256 by default) before embedding, a filtered scan.
    rng = np.random.default_rng(args.seed + 1)
    lookups = [[f"{x:032x}" for x in rng.integers(0, 2**62, size=256)] for _ in range(10)]
    with measure("hashes") as ph:
        samples = time_calls(store.vectors_for_hashes, lookups)
    results["[ingest] vectors_for_hashes(256 new)"] = {
        **latency_summary(samples),
        "load": ph.load,
        "cpu_per_wall": ph.cpu_per_wall,
    }
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    root = (
        Path(args.work_dir)
        if args.work_dir
        else Path(tempfile.mkdtemp(prefix="almanac-bench-query-"))
    )
    root.mkdir(parents=True, exist_ok=True)
    loads = [load_note("start")]
    try:
        return run(args, sizes, root, loads)
    finally:
        if args.keep:
            print(f"KBs kept under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, sizes: list[int], root: Path, loads: list[dict]) -> int:
    all_queries = list(load_scifact_queries(args.eval_dir).values())
    if len(all_queries) < args.queries + args.warmup:
        sys.exit(f"only {len(all_queries)} queries available")
    queries = all_queries[: args.queries]
    warm = all_queries[-args.warmup :] if args.warmup else []
    pool = passage_pool(args.eval_dir)
    print(
        f"{len(pool):,} real passages in the pool "
        f"(mean {sum(len(t) for _, t in pool) / len(pool):.0f} chars); "
        f"{len(queries)} timed queries, {len(warm)} warm-up"
    )
    rng = np.random.default_rng(args.seed)

    embedder: SentenceTransformerEmbedder | None = None
    figures: dict[str, dict] = {}
    builds: dict[str, dict] = {}
    for size in sizes:
        kb = root / f"kb-{size}"
        if kb.exists():
            shutil.rmtree(kb)
        if embedder is None:
            services = build_services(kb)
            embedder, store = services.embedder, services.store
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            embedder.embed(["warm-up"])
        else:
            store = Store(kb, dim=embedder.dim, embedder_name=embedder.name)
        print(f"\nbuilding {size:,}-chunk KB in {kb} (random vectors) ...", flush=True)
        builds[str(size)] = info = build_kb(store, size, pool, args, rng)
        print(
            f"  {info['rows']:,} rows, {info['commits']} commits, write {info['write_s']:.1f}s, "
            f"FTS index {info['fts_index_s']:.1f}s, {info['fragments']} fragments, "
            f"{info['total_mb']:.0f} MB",
            flush=True,
        )
        loads.append(load_note(f"before queries {size}"))
        figures[str(size)] = bench_size(store, embedder, queries, warm, args)
        loads.append(load_note(f"after queries {size}"))
        if not args.keep:
            del store
            shutil.rmtree(kb, ignore_errors=True)

    print_table(
        "KB builds (random vectors; real texts)",
        ["chunks", "rows", "commits", "write s", "FTS index s", "fragments", "MB", "load1"],
        [
            [
                int(s),
                b["rows"],
                b["commits"],
                b["write_s"],
                b["fts_index_s"],
                b["fragments"],
                b["total_mb"],
                b["load"],
            ]
            for s, b in builds.items()
        ],
    )
    for size, res in figures.items():
        print_table(
            f"Query latency, {int(size):,} chunks ({args.queries} SciFact queries, k={args.k}, "
            f"candidates={args.candidates}, floor=-1; flat vector search, no ANN index)",
            ["call", "p50 ms", "p95 ms", "mean ms", "max ms", "cpu/wall", "load1 before->after"],
            [
                [
                    name,
                    r["p50_ms"],
                    r["p95_ms"],
                    r["mean_ms"],
                    r["max_ms"],
                    r["cpu_per_wall"],
                    r["load"],
                ]
                for name, r in res.items()
            ],
            digits=1,
        )
    print(
        "\nNOTE: vectors are random - these KBs measure LATENCY ONLY (no retrieval quality). "
        "Indented rows: Searcher.search's parts, timed inside the same calls (text_search may\n"
        "overlap the query embedding, so the parts need not add up)."
    )
    save_json(
        args.json,
        {
            "benchmark": "query_latency",
            "note": "random vectors: latency only",
            "machine": machine_info(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "builds": builds,
            "latency": figures,
            "load": loads,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
