"""Query latency of ``Searcher.search`` and its parts, ANN recall, at 10k to 1M chunks.

    .venv/bin/python benchmarks/query_latency.py                          # 10k and 100k chunks
    .venv/bin/python benchmarks/query_latency.py --sizes 100000,1000000   # the scale targets
    .venv/bin/python benchmarks/query_latency.py --sizes 2000 --queries 30  # smoke run
    .venv/bin/python benchmarks/query_latency.py --json benchmarks/out/query.json

Knowledge bases are built FAST, without embedding their texts: real passages (SciFact abstracts
cut at sentences, SQuAD paragraphs; cycled) are written through ``Store.write_documents`` in
batches (memory stays bounded at any size), then ``Store.maybe_maintain()`` runs as at the end of
an app ingest: it builds the full-text index and, past the store's threshold, the ANN vector
index, and compacts the many commits.

Vectors (``--vectors``):
  realish (default)  every passage of the pool is embedded ONCE by the app's embedder (cached under
                     benchmarks/out/); row i gets the vector of its passage plus Gaussian noise
                     (norm 0.5-1.2, so cosine 0.64-0.89 to it), renormalized. A mixture of ~15k
                     Gaussians centred on real embeddings: real queries have real neighbourhoods,
                     dense ones at 1M, which is what ANN recall depends on.
  random             uniform on the sphere: latency only (ANN recall there is meaningless).

Queries are real SciFact claims, embedded by the real model inside ``search``. Recall@10 compares
the store's (indexed) vector search with exact top-10s computed by numpy over every stored vector
(read back in batches).

KBs are cached under benchmarks/out/query-kb/ keyed by everything that shapes them (size, vectors,
seed, layout, pool, embedder, index version), so re-runs skip the build; --rebuild forces it,
--work-dir builds in a scratch folder instead (removed afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from _common import (
    OUT_DIR,
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
from almanac.app.services import build_services
from almanac.core.embedding.embedding import Embedder, embedding_text
from almanac.core.indexing.chunking import chunk_hash
from almanac.core.records import Chunk, DocumentInfo, DocumentStatus, SearchFilters
from almanac.core.retrieval.retrieval import RetrievalConfig, Searcher
from almanac.core.store.ann_index import INDEX_VERSION
from almanac.core.store.store import SCHEMA_VERSION, DocumentWrite, Store

CACHE_DIR = OUT_DIR / "query-kb"
FOLDERS = 10  # documents are spread over this many folders, for path-prefix filters
KINDS = ("md", "pdf", "txt")
NOISE = (0.5, 1.2)  # norm of the noise added to a passage's embedding (realish vectors)
MTIME_BASE = 1_700_000_000.0  # document d was modified at MTIME_BASE + d hours


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
    p.add_argument(
        "--recall-queries",
        type=int,
        default=100,
        help="queries whose vector top-10 is checked against exact search (default 100)",
    )
    p.add_argument("--k", type=int, default=8, help="k for Searcher.search (default 8, the app's)")
    p.add_argument(
        "--candidates",
        type=int,
        default=RetrievalConfig().candidates,
        help="k for the vector-only / text-only store calls (default: RetrievalConfig.candidates)",
    )
    p.add_argument(
        "--vectors",
        choices=("realish", "random"),
        default="realish",
        help="row vectors: noisy copies of real passage embeddings, or uniform random",
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
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for query embedding (default: the app's, physical cores)",
    )
    p.add_argument(
        "--churn",
        type=int,
        default=0,
        metavar="N",
        help="then, on a copy of each KB: N small edits without maintenance, one compaction "
        "(before/after figures), and N more with the app's maintenance after each (default 0)",
    )
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--rebuild", action="store_true", help="rebuild cached KBs")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="build the KBs here instead of the cache (removed afterwards unless --keep)",
    )
    p.add_argument("--keep", action="store_true", help="keep --work-dir KBs afterwards")
    p.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="save the figures as JSON"
    )
    return p.parse_args(argv)


# -- memory ---------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Linux: restart this process's peak-RSS counter (VmHWM), so phases are measured apart."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# -- vectors --------------------------------------------------------------------------------------


def pool_embeddings(pool: list[tuple[str, str]], embedder: Embedder, eval_dir: Path) -> np.ndarray:
    """The pool's passages embedded as the ingest would (heading + text), cached on disk."""
    digest = hashlib.sha256()
    for heading, text in pool:
        digest.update(heading.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\1")
    key = f"{embedder.name}-{embedder.dim}-{digest.hexdigest()[:16]}"
    path = OUT_DIR / "query-cache" / f"pool-{key}.npy"
    if path.is_file():
        return np.load(path)
    print(f"embedding the {len(pool):,} pool passages once (cached in {path}) ...", flush=True)
    texts = [embedding_text((h,) if h else (), t) for h, t in pool]
    parts = []
    t0 = time.perf_counter()
    for i in range(0, len(texts), 256):
        parts.append(np.asarray(embedder.embed(texts[i : i + 256]), dtype=np.float32))
        if i % 2560 == 0:
            print(f"  {i + len(parts[-1]):,} in {time.perf_counter() - t0:.0f}s", flush=True)
    vectors = np.concatenate(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def row_vectors(
    first: int,
    count: int,
    dim: int,
    centres: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    if centres is None:
        v = rng.standard_normal((count, dim), dtype=np.float32)
    else:
        base = centres[np.arange(first, first + count) % len(centres)]
        noise = rng.standard_normal((count, dim), dtype=np.float32)
        noise *= (rng.uniform(*NOISE, size=(count, 1)) / np.sqrt(dim)).astype(np.float32)
        v = base + noise
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


# -- building -------------------------------------------------------------------------------------


def kb_key(size: int, args: argparse.Namespace, pool_len: int, embedder: Embedder) -> str:
    parts = {
        "size": size,
        "vectors": args.vectors,
        "seed": args.seed,
        "chunks_per_doc": args.chunks_per_doc,
        "docs_per_write": args.docs_per_write,
        "pool": pool_len,
        "embedder": f"{embedder.name}-{embedder.dim}",
        "schema": SCHEMA_VERSION,
        "index": INDEX_VERSION,
        "layout": 3,  # bump when build_kb changes what it writes
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    return f"kb-{size}-{args.vectors}-{digest}"


def synthetic_chunk(path: str, ordinal: int, heading: str, text: str, start: int) -> Chunk:
    """A chunk as the Chunker would store it: hashed over its heading context and text."""
    heading_path = (heading,) if heading else ()
    return Chunk(
        doc_path=path,
        ordinal=ordinal,
        text=text,
        heading_path=heading_path,
        page=None,
        start=start,
        end=start + len(text),
        chunk_hash=chunk_hash(embedding_text(heading_path, text)),
    )


def build_kb(
    store: Store,
    size: int,
    pool: list[tuple[str, str]],
    centres: np.ndarray | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + size)
    dim = store.dim
    per_doc = args.chunks_per_doc
    n_docs = (size + per_doc - 1) // per_doc
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

    reset_peak_rss()
    with measure("build") as build:
        row = 0
        for d in range(n_docs):
            count = min(per_doc, size - d * per_doc)
            kind = KINDS[d % len(KINDS)]
            path = f"/synthetic/kb-{size}/f{d % FOLDERS}/doc-{d:05d}.{kind}"
            chunks: list[Chunk] = []
            offset = 0
            for ordinal in range(count):
                heading, text = pool[(row + ordinal) % len(pool)]
                chunks.append(synthetic_chunk(path, ordinal, heading, text, offset))
                offset += len(text) + 2
            vectors = row_vectors(row, count, dim, centres, rng)
            row += count
            mtime = MTIME_BASE + d * 3600.0
            info = DocumentInfo(
                path=path,
                source="/synthetic",
                rel_path=path.split("/", 3)[3],
                sha256=f"{d:064x}",
                size=offset,
                mtime=mtime,
                kind=kind,
                status=DocumentStatus.INDEXED,
                error="",
                chunk_count=count,
                indexed_at=now,
            )
            writes.append(DocumentWrite(info, chunks, vectors))
            if len(writes) >= args.docs_per_write:
                flush()
        flush()
        peak_writes = peak_rss_mb()
        # What the app does when an ingest ends: full-text index, ANN and scalar indexes past
        # the threshold, compaction of the many commits.
        maintain = timed_maintenance(store)
    stats = store.storage_stats()
    return {
        "rows": stats.rows,
        "docs": n_docs,
        "commits": commits,
        "build_s": build.wall,
        "write_s": write_s,
        **maintain,
        "vector_index": stats.vector_index or "none (flat)",
        "fragments": stats.fragments,
        "disk_mb": stats.disk_bytes / 1e6,
        "peak_rss_writes_mb": peak_writes,
        "peak_rss_build_mb": max(
            peak_writes, *(v for k, v in maintain.items() if k.startswith("peak_rss"))
        ),
        "load": build.load,
    }


def timed_maintenance(store: Store) -> dict[str, float]:
    """``store.maybe_maintain()``, with the time and peak RSS of each index build and of the
    compaction (a peak can't fall below the RSS the phase started with)."""
    index_s: dict[str, float] = {}
    peaks: dict[str, float] = {}
    table = store._chunks  # a benchmark may look inside; the app never does

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = str(args[0]) if name == "create_index" else "compaction"
            reset_peak_rss()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                index_s[key] = index_s.get(key, 0.0) + time.perf_counter() - t0
                peaks[key] = max(peaks.get(key, 0.0), peak_rss_mb())

        return wrapper

    with measure("maintain") as maintain:
        table.create_index = timed("create_index", table.create_index)  # type: ignore[method-assign]
        table.optimize = timed("optimize", table.optimize)  # type: ignore[method-assign]
        try:
            store.maybe_maintain()
        finally:
            del table.create_index, table.optimize
    out = {
        "maintain_s": maintain.wall,
        "fts_index_s": index_s.pop("search_text", 0.0),
        "vector_index_s": index_s.pop("vector", 0.0),
        "optimize_s": index_s.pop("compaction", 0.0),
        "peak_rss_fts_mb": peaks.pop("search_text", float("nan")),
        "peak_rss_vector_index_mb": peaks.pop("vector", float("nan")),
        "peak_rss_compaction_mb": peaks.pop("compaction", float("nan")),
    }
    out["scalar_index_s"] = sum(index_s.values())
    out["peak_rss_scalar_mb"] = max(peaks.values(), default=float("nan"))
    return out


def open_kb(
    size: int,
    args: argparse.Namespace,
    root: Path,
    embedder: Embedder,
    pool: list[tuple[str, str]],
    centres: np.ndarray | None,
) -> tuple[Store, dict[str, Any]]:
    name = kb_key(size, args, len(pool), embedder)
    kb = root / name
    done = kb / "benchmark-build.json"
    if done.is_file() and not args.rebuild:
        print(f"\nusing cached {size:,}-chunk KB {kb}", flush=True)
        store = Store(kb, dim=embedder.dim, embedder_name=embedder.name)
        info = json.loads(done.read_text())
        info["cached"] = True
        # Index policy may have changed since the build: bring the KB up to date as the app would.
        info["maintain_on_open"] = timed_maintenance(store)
        return store, info
    if kb.exists():
        shutil.rmtree(kb)
    print(f"\nbuilding {size:,}-chunk KB in {kb} ({args.vectors} vectors) ...", flush=True)
    store = Store(kb, dim=embedder.dim, embedder_name=embedder.name)
    info = build_kb(store, size, pool, centres, args)
    done.write_text(json.dumps(info, indent=1))
    info["cached"] = False
    return store, info


# -- measuring ------------------------------------------------------------------------------------


def time_calls(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[float]:
    out: list[float] = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def exact_top(store: Store, queries: np.ndarray, k: int) -> tuple[list[list[str]], np.ndarray]:
    """Brute force over every stored vector, a batch at a time."""
    best_sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), "", dtype=object)
    for batch in store.iter_chunk_rows(["id", "vector"]):
        column = batch.column("vector")
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(len(batch), -1)
        ids = np.asarray(batch.column("id").to_pylist(), dtype=object)
        sims = queries @ vectors.T
        top = np.argpartition(-sims, min(k, sims.shape[1] - 1), axis=1)[:, :k]
        cand_sims = np.concatenate([best_sims, np.take_along_axis(sims, top, axis=1)], axis=1)
        cand_ids = np.concatenate([best_ids, ids[top]], axis=1)
        order = np.argsort(-cand_sims, axis=1, kind="stable")[:, :k]
        best_sims = np.take_along_axis(cand_sims, order, axis=1)
        best_ids = np.take_along_axis(cand_ids, order, axis=1)
    return [list(row) for row in best_ids], best_sims


def recall_at_10(store: Store, qvecs: list[np.ndarray], candidates: int) -> dict[str, float]:
    matrix = np.stack(qvecs).astype(np.float32)
    with measure("exact") as exact_t:
        truth, truth_sims = exact_top(store, matrix, 10)
    recalls: list[float] = []
    recalls_app: list[float] = []  # the top 10 of the call Searcher.search makes (k=candidates)
    worst_score_err = 0.0
    for q, want, sims in zip(matrix, truth, truth_sims, strict=True):
        got = store.vector_search(q, 10)
        recalls.append(len({h.chunk_id for h in got} & set(want)) / 10)
        top = store.vector_search(q, candidates)[:10]
        recalls_app.append(len({h.chunk_id for h in top} & set(want)) / 10)
        exact = dict(zip(want, sims, strict=True))
        for h in got:  # re-scored candidates: the cosine returned is the exact one
            if h.chunk_id in exact:
                worst_score_err = max(worst_score_err, abs(h.score - float(exact[h.chunk_id])))
    return {
        "recall_at_10": float(np.mean(recalls)),
        "recall_min": float(np.min(recalls)),
        "recall_at_10_app": float(np.mean(recalls_app)),
        "recall_app_min": float(np.min(recalls_app)),
        "queries": len(recalls),
        "exact_scan_s": exact_t.wall,
        "max_score_error": worst_score_err,
    }


def summary(samples: list[float], phase: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = dict(latency_summary(samples))
    out["load"] = phase.load if phase is not None else ""
    out["cpu_per_wall"] = phase.cpu_per_wall if phase is not None else float("nan")
    return out


def bench_size(
    store: Store,
    embedder: Embedder,
    queries: list[str],
    warm: list[str],
    size: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    searcher = Searcher(store, embedder, RetrievalConfig(candidates=args.candidates))
    n = args.candidates
    rss_before = rss_mb()  # freed build memory may still be held: the peaks can't go below it
    reset_peak_rss()
    for q in warm:  # warm-up: caches, index pages, model
        searcher.search(q, k=args.k, floor=-1.0)
        store.vector_search(embedder.embed_query(q), n)
        store.text_search(q, n)

    results: dict[str, dict[str, Any]] = {}
    # Full hybrid search, with a per-component split from timing wrappers.
    with (
        instrument(embedder, "embed_query") as e_t,
        instrument(store, "vector_search", "text_search") as s_t,
        measure("search") as ph,
    ):
        samples = time_calls(lambda q: searcher.search(q, k=args.k, floor=-1.0), queries)
    results["Searcher.search (hybrid)"] = summary(samples, ph)
    peak_search = peak_rss_mb()
    split = {
        "  embed_query": e_t["embed_query"].samples,
        "  vector_search": s_t["vector_search"].samples,
        "  text_search": s_t["text_search"].samples,
    }
    for name, vals in split.items():
        results[name] = summary(vals, ph)
    # Whatever isn't embedding or vector search: fusion, Python, and waiting for the text search
    # when it runs longer than the embedding it overlaps with (or all of it, when sequential).
    sequential = [v for k, v in split.items() if "text_search" not in k]
    if all(len(v) == len(samples) for v in sequential):
        rest = [s - sum(parts) for s, *parts in zip(samples, *sequential, strict=True)]
        results["  rest (text wait, fusion, python)"] = summary(rest, ph)

    # Store calls alone (query vectors precomputed).
    qvecs = [embedder.embed_query(q) for q in queries]
    with measure("vector") as ph:
        samples = time_calls(lambda v: store.vector_search(v, n), qvecs)
    results[f"store.vector_search k={n}"] = summary(samples, ph)
    folder = f"/synthetic/kb-{size}/f3"
    one_doc = f"/synthetic/kb-{size}/f0/doc-00000.md"
    filters = {
        f"  + folder filter (1/{FOLDERS} of rows)": SearchFilters(path_prefix=folder),
        f"  + kind filter (1/{len(KINDS)})": SearchFilters(kinds=("pdf",)),
        "  + mtime filter (newest 20%)": SearchFilters(
            modified_after=MTIME_BASE + 0.8 * (size / args.chunks_per_doc) * 3600.0
        ),
        "  + one-document filter": SearchFilters(path_prefix=one_doc),
    }
    for label, flt in filters.items():
        with measure("vector-filtered") as ph:
            samples = time_calls(lambda v, f=flt: store.vector_search(v, n, f), qvecs[:50])
        results[label] = summary(samples, ph)
    with measure("text") as ph:
        samples = time_calls(lambda q: store.text_search(q, n), queries)
    results[f"store.text_search k={n}"] = summary(samples, ph)
    with measure("text-filtered") as ph:
        flt = SearchFilters(path_prefix=folder)
        samples = time_calls(lambda q: store.text_search(q, n, flt), queries[:50])
    results["  + folder filter"] = summary(samples, ph)
    with measure("embed") as ph:
        samples = time_calls(embedder.embed_query, queries)
    results["embedder.embed_query"] = summary(samples, ph)
    # Not a query call, but its cost grows with the KB like the others: the Ingestor looks up
    # every window of new chunk hashes (256 by default) before embedding, a filtered scan.
    rng = np.random.default_rng(args.seed + 1)
    lookups = [[f"{x:032x}" for x in rng.integers(0, 2**62, size=256)] for _ in range(10)]
    with measure("hashes") as ph:
        samples = time_calls(store.vectors_for_hashes, lookups)
    results["[ingest] vectors_for_hashes(256 new)"] = summary(samples, ph)
    peak_query = peak_rss_mb()

    recall = recall_at_10(store, qvecs[: args.recall_queries], n)
    searcher.close()
    return {
        "latency": results,
        "recall": recall,
        "rss_before_queries_mb": rss_before,
        "peak_rss_search_mb": peak_search,  # warm-up plus the timed Searcher.search calls
        "peak_rss_query_mb": peak_query,  # ... plus every store call above (filters, hashes)
    }


# -- churn: many small edits, compaction ----------------------------------------------------------


def edit_document(
    store: Store,
    size: int,
    edit: int,
    pool: list[tuple[str, str]],
    centres: np.ndarray | None,
    rng: np.random.Generator,
) -> None:
    """One saved file: a 20-chunk document of 25 rewritten in turn; every 10th edit, a removal."""
    path = f"/synthetic/kb-{size}/churn/doc-{edit % 25:02d}.md"
    chunks = []
    for ordinal in range(20):
        heading, text = pool[(edit * 20 + ordinal) % len(pool)]
        chunks.append(synthetic_chunk(path, ordinal, heading, f"{text} (revision {edit})", 0))
    info = DocumentInfo(
        path=path,
        source="/synthetic",
        rel_path=path.split("/", 3)[3],
        sha256=f"{edit:064x}",
        size=1,
        mtime=MTIME_BASE + edit,
        kind="md",
        status=DocumentStatus.INDEXED,
        error="",
        chunk_count=20,
        indexed_at=MTIME_BASE + edit,
    )
    vectors = row_vectors(edit * 20, 20, store.dim, centres, rng)
    store.write_documents([DocumentWrite(info, chunks, vectors)])
    if edit % 10 == 9:
        store.remove_documents([f"/synthetic/kb-{size}/churn/doc-{(edit // 10) % 25:02d}.md"])


def storage(store: Store) -> dict[str, Any]:
    st = store.storage_stats()
    return {
        "fragments": st.fragments,
        "versions": st.versions,
        "disk_mb": st.disk_bytes / 1e6,
        "index_segments": st.index_segments,
        "unindexed_rows": st.unindexed_rows,
    }


def overlap(before: list[list[str]], after: list[list[str]]) -> float:
    """Mean share of each query's top 10 that is still in its top 10."""
    shares = [len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(before, after, strict=True)]
    return float(np.mean(shares)) if shares else float("nan")


def churn_size(
    kb: Path,
    size: int,
    embedder: Embedder,
    queries: list[str],
    pool: list[tuple[str, str]],
    centres: np.ndarray | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    import datetime

    rng = np.random.default_rng(args.seed + 7)
    with tempfile.TemporaryDirectory(prefix="almanac-bench-churn-") as tmp:
        copy = Path(tmp) / kb.name
        print(
            f"\nchurn on a copy of the {size:,}-chunk KB ({args.churn} edits x 2) ...", flush=True
        )
        shutil.copytree(kb, copy)
        store = Store(copy, dim=embedder.dim, embedder_name=embedder.name)
        searcher = Searcher(store, embedder, RetrievalConfig(candidates=args.candidates))
        probe = queries[:30]
        qvecs = [embedder.embed_query(q) for q in probe]

        def snapshot() -> dict[str, Any]:
            vec = time_calls(lambda v: store.vector_search(v, args.candidates), qvecs)
            hyb = time_calls(lambda q: searcher.search(q, k=args.k, floor=-1.0), probe)
            return {
                **storage(store),
                "vector_p50_ms": latency_summary(vec)["p50_ms"],
                "hybrid_p50_ms": latency_summary(hyb)["p50_ms"],
                "top10": [[h.chunk_id for h in store.vector_search(v, 10)] for v in qvecs],
                "text_top10": [[h.chunk_id for h in store.text_search(q, 10)] for q in probe],
            }

        out: dict[str, Any] = {"edits": args.churn, "start": storage(store)}
        t0 = time.perf_counter()
        for edit in range(args.churn):
            edit_document(store, size, edit, pool, centres, rng)
        out["edit_s"] = time.perf_counter() - t0
        before = snapshot()
        t0 = time.perf_counter()
        store.compact(grace=datetime.timedelta(0))
        out["compact_s"] = time.perf_counter() - t0
        after = snapshot()
        # Vector: near-ties may swap as rows move from flat search into partitions. Text: BM25's
        # corpus statistics now include the folded rows, so scores shift a little.
        out["vector_top10_overlap"] = overlap(before["top10"], after["top10"])
        out["text_top10_overlap"] = overlap(before["text_top10"], after["text_top10"])
        for snap in (before, after):
            del snap["top10"], snap["text_top10"]
        out["before_compaction"], out["after_compaction"] = before, after

        maintain_s: list[float] = []
        for edit in range(args.churn, 2 * args.churn):
            edit_document(store, size, edit, pool, centres, rng)
            t0 = time.perf_counter()
            store.maybe_maintain()
            maintain_s.append(time.perf_counter() - t0)
        maintained = snapshot()
        del maintained["top10"], maintained["text_top10"]
        out["with_maintenance"] = {
            **maintained,
            "maintain_total_s": sum(maintain_s),
            "maintain_max_s": max(maintain_s, default=0.0),
            "maintain_p50_ms": latency_summary(maintain_s)["p50_ms"],
        }
        searcher.close()
    return out


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    scratch = args.work_dir is not None
    root = Path(args.work_dir) if scratch else CACHE_DIR
    root.mkdir(parents=True, exist_ok=True)
    loads = [load_note("start")]
    try:
        return run(args, sizes, root, loads)
    finally:
        if scratch and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif scratch:
            print(f"KBs kept under {root}")


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
    services = build_services(Path(tempfile.mkdtemp(prefix="almanac-bench-query-services-")))
    embedder = services.embedder
    shutil.rmtree(services.store.kb_dir, ignore_errors=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    embedder.embed(["warm-up"])
    centres = pool_embeddings(pool, embedder, args.eval_dir) if args.vectors == "realish" else None
    base_rss = rss_mb()
    print(f"RSS with the embedder loaded: {base_rss:.0f} MB")

    figures: dict[str, dict[str, Any]] = {}
    builds: dict[str, dict[str, Any]] = {}
    churns: dict[str, dict[str, Any]] = {}
    for size in sizes:
        store, info = open_kb(size, args, root, embedder, pool, centres)
        builds[str(size)] = info
        print(
            f"  {info['rows']:,} rows, {info['commits']} commits, write {info['write_s']:.1f}s, "
            f"FTS index {info['fts_index_s']:.1f}s, vector index ({info['vector_index']}) "
            f"{info['vector_index_s']:.1f}s, "
            f"scalar indexes {info.get('scalar_index_s', 0.0):.1f}s, "
            f"compaction {info['optimize_s']:.1f}s, "
            f"{info['fragments']} fragments, {info['disk_mb']:.0f} MB on disk, "
            f"peak RSS {info['peak_rss_build_mb']:.0f} MB",
            flush=True,
        )
        if "peak_rss_writes_mb" in info:
            print(
                "  peak RSS (MB) by phase: writes {peak_rss_writes_mb:.0f}, FTS index "
                "{peak_rss_fts_mb:.0f}, vector index {peak_rss_vector_index_mb:.0f}, scalar "
                "indexes {peak_rss_scalar_mb:.0f}, compaction {peak_rss_compaction_mb:.0f}".format(
                    **info
                ),
                flush=True,
            )
        if info.get("maintain_on_open"):
            m = info["maintain_on_open"]
            print(
                f"  maintenance on open: {m['maintain_s']:.1f}s (vector index "
                f"{m['vector_index_s']:.1f}s, scalar {m['scalar_index_s']:.1f}s, compaction "
                f"{m['optimize_s']:.1f}s)",
                flush=True,
            )
        loads.append(load_note(f"before queries {size}"))
        figures[str(size)] = bench_size(store, embedder, queries, warm, size, args)
        loads.append(load_note(f"after queries {size}"))
        kb_dir = store.kb_dir
        del store
        if args.churn:
            churns[str(size)] = churn_size(kb_dir, size, embedder, queries, pool, centres, args)

    print_table(
        f"KB builds ({args.vectors} vectors; real texts; build peak RSS includes the embedder, "
        f"{base_rss:.0f} MB)",
        [
            "chunks",
            "commits",
            "write s",
            "FTS idx s",
            "vector idx",
            "vec idx s",
            "scalar idx s",
            "compact s",
            "fragments",
            "disk MB",
            "peak RSS MB",
            "cached",
        ],
        [
            [
                int(s),
                b["commits"],
                b["write_s"],
                b["fts_index_s"],
                b["vector_index"],
                b["vector_index_s"],
                b.get("scalar_index_s", float("nan")),
                b["optimize_s"],
                b["fragments"],
                b["disk_mb"],
                b["peak_rss_build_mb"],
                "yes" if b["cached"] else "no",
            ]
            for s, b in builds.items()
        ],
        digits=1,
    )
    for size, res in figures.items():
        print_table(
            f"Query latency, {int(size):,} chunks ({args.queries} SciFact queries, k={args.k}, "
            f"candidates={args.candidates}, floor=-1; vector index: "
            f"{builds[size]['vector_index']})",
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
                for name, r in res["latency"].items()
            ],
            digits=1,
        )
    print_table(
        "Summary",
        [
            "chunks",
            "hybrid p50",
            "hybrid p95",
            "vector p50",
            "text p50",
            "embed p50",
            "R@10 k=10",
            "min",
            f"R@10 k={args.candidates}",
            "min",
            "build s",
            "peak RSS build",
            "RSS before",
            "RSS search",
            "RSS all calls",
        ],
        [
            [
                int(s),
                r["latency"]["Searcher.search (hybrid)"]["p50_ms"],
                r["latency"]["Searcher.search (hybrid)"]["p95_ms"],
                r["latency"][f"store.vector_search k={args.candidates}"]["p50_ms"],
                r["latency"][f"store.text_search k={args.candidates}"]["p50_ms"],
                r["latency"]["embedder.embed_query"]["p50_ms"],
                r["recall"]["recall_at_10"],
                r["recall"]["recall_min"],
                r["recall"]["recall_at_10_app"],
                r["recall"]["recall_app_min"],
                builds[s]["build_s"],
                builds[s]["peak_rss_build_mb"],
                r["rss_before_queries_mb"],
                r["peak_rss_search_mb"],
                r["peak_rss_query_mb"],
            ]
            for s, r in figures.items()
        ],
        digits=2,
    )
    if churns:
        rows = []
        for s, c in churns.items():
            for label, snap in (
                ("start (cached KB)", c["start"]),
                (f"after {c['edits']} edits, no maintenance", c["before_compaction"]),
                (f"compact(grace=0) {c['compact_s']:.1f}s", c["after_compaction"]),
                (
                    f"{c['edits']} more edits, maybe_maintain after each "
                    f"(total {c['with_maintenance']['maintain_total_s']:.0f}s, "
                    f"max {c['with_maintenance']['maintain_max_s']:.1f}s)",
                    c["with_maintenance"],
                ),
            ):
                rows.append(
                    [
                        int(s),
                        label,
                        snap["fragments"],
                        snap["versions"],
                        snap["disk_mb"],
                        snap["index_segments"],
                        snap["unindexed_rows"],
                        snap.get("vector_p50_ms", float("nan")),
                        snap.get("hybrid_p50_ms", float("nan")),
                    ]
                )
        print_table(
            "Churn: 20-chunk document rewrites (every 10th edit also a removal), on a copy",
            [
                "chunks",
                "state",
                "fragments",
                "versions",
                "disk MB",
                "idx segments",
                "unindexed",
                "vector p50",
                "hybrid p50",
            ],
            rows,
            digits=1,
        )
        for s, c in churns.items():
            print(
                f"  {int(s):,}: top-10 overlap before/after compaction: vector "
                f"{c['vector_top10_overlap']:.1%}, text {c['text_top10_overlap']:.1%}; "
                f"{c['edits']} edits took {c['edit_s']:.1f}s to write"
            )
    print(
        f"\nR@10: top 10 of store.vector_search(k=10, and k={args.candidates} as Searcher.search "
        f"asks) vs exact numpy top-10 over every stored vector, mean and worst of "
        f"{args.recall_queries} queries. Vectors: {args.vectors}"
        + (" (noisy copies of real passage embeddings)" if args.vectors == "realish" else "")
        + ".\nIndented rows under Searcher.search: its parts, timed inside the same calls "
        "(text_search overlaps the query embedding, so the parts need not add up). Peak RSS "
        "(VmHWM) is reset before each phase and includes the embedder."
    )
    save_json(
        args.json,
        {
            "benchmark": "query_latency",
            "vectors": args.vectors,
            "machine": machine_info(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "rss_with_embedder_mb": base_rss,
            "builds": builds,
            "results": figures,
            "churn": churns,
            "load": loads,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
