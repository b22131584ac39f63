"""Almanac vs a default LlamaIndex pipeline on the same SciFact folder, in one run.

    .venv/bin/python benchmarks/side_by_side.py --setup-only                   # make the venv
    .venv/bin/python benchmarks/side_by_side.py --split train --limit-docs 300 # smoke run
    .venv/bin/python benchmarks/side_by_side.py                                # full: test split

Both sides read the same folder (one ``# {title}\\n\\n{text}`` Markdown file per abstract, written
by ``_common.write_scifact_folder``) and embed with the same bundled all-MiniLM-L6-v2 folder.

LlamaIndex runs in its own virtualenv, ``benchmarks/.venv-llamaindex`` (git-ignored), made here on
first use: CPU torch first (``--torch-find-links``, default /opt/wheels), then the pinned
LlamaIndex packages under a constraint that holds torch, so pip never swaps in a CUDA build. Its
half, ``_llamaindex_side.py``, is a subprocess that returns JSON: SimpleDirectoryReader, the
default SentenceSplitter, HuggingFaceEmbedding, LanceDB; retrievers: vector (its default), BM25,
and QueryFusionRetriever (reciprocal rank, no query generation), each asked for ``--top-k`` nodes.

Almanac runs in this process through the app's own code path: ``build_services`` on a fresh
knowledge base, ``Ingestor.ingest``, and the ``almanac eval`` harness (``core.eval.evaluate``):
hybrid search, ``--chunks`` chunks per query, document-level ranking.

Reported per pipeline: ingestion seconds (reading, splitting, embedding, writing; model load
excluded and shown apart), nDCG@10 and Recall@10 over documents (binary relevance, BEIR qrels),
query latency p50/p95, and Almanac / LlamaIndex ratios. Output: a table, JSON
(``benchmarks/out/side_by_side.json``) and a Markdown table for the README
(``benchmarks/out/side_by_side.md``).

Smoke runs (``--limit-docs N``) keep only the queries with a relevant document among the first N
abstracts, judged against those documents alone. The test split is for the final, untuned figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    OUT_DIR,
    REPO_ROOT,
    add_eval_dir_arg,
    dedupe,
    latency_summary,
    load_note,
    load_qrels,
    load_scifact_corpus,
    load_scifact_queries,
    machine_info,
    print_table,
    save_json,
    write_scifact_folder,
)

VENV = REPO_ROOT / "benchmarks" / ".venv-llamaindex"
SIDE_SCRIPT = Path(__file__).resolve().parent / "_llamaindex_side.py"
TORCH_PIN = "torch==2.13.0"
# Verified together (2026-11) with torch 2.13.0+cpu, offline, on this benchmark.
LLAMAINDEX_PINS = (
    "llama-index-core==0.14.25",
    "llama-index-embeddings-huggingface==0.8.0",
    "llama-index-vector-stores-lancedb==0.6.0",
    "llama-index-retrievers-bm25==0.8.0",
    "llama-index-readers-file==0.7.0",
)
# The reference for LlamaIndex on SciFact test (5,183 abstracts, 300 queries).
REFERENCE = {"vector": 0.632, "bm25": 0.686, "fusion": 0.706, "ingest_s": 200.0}
CUTOFF = 10
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_dir_arg(p)
    p.add_argument("--split", default="test", choices=["train", "test"], help="qrels (test)")
    p.add_argument("--limit-docs", type=int, help="only the first N abstracts (smoke runs)")
    p.add_argument("--limit-queries", type=int, help="only the first N queries")
    p.add_argument("--top-k", type=int, default=10, help="LlamaIndex nodes per query (10)")
    p.add_argument("--chunks", type=int, default=100, help="Almanac chunks per query (100)")
    p.add_argument(
        "--modes", default="vector,bm25,fusion", help="LlamaIndex retrievers to run (all three)"
    )
    p.add_argument("--only", choices=["almanac", "llamaindex"], help="run one side only")
    p.add_argument("--workdir", type=Path, help="scratch folder (default: a temp folder)")
    p.add_argument("--json", type=Path, default=OUT_DIR / "side_by_side.json", metavar="OUT")
    p.add_argument("--markdown", type=Path, default=OUT_DIR / "side_by_side.md", metavar="OUT")
    p.add_argument("--venv", type=Path, default=VENV, help=f"LlamaIndex venv (default {VENV})")
    p.add_argument(
        "--torch-find-links",
        default="/opt/wheels",
        help="folder with the CPU torch wheel (default /opt/wheels; '' for the package index)",
    )
    p.add_argument("--setup-only", action="store_true", help="make the venv and stop")
    return p.parse_args(argv)


# -- the LlamaIndex venv --------------------------------------------------------------------------


def ensure_venv(venv: Path, find_links: str) -> Path:
    """The venv's python, the venv made or brought to the pinned versions first."""
    python = venv / "bin" / "python"
    marker = venv / "almanac-pins.txt"
    wanted = "\n".join((TORCH_PIN, *LLAMAINDEX_PINS)) + "\n"
    if python.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return python
    print(f"setting up {venv} (once)", flush=True)
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    links = ["--find-links", find_links] if find_links else []
    subprocess.run([*pip, *links, TORCH_PIN], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text(TORCH_PIN + "\n", encoding="utf-8")
    subprocess.run([*pip, *links, "-c", str(constraints), *LLAMAINDEX_PINS], check=True)
    check = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
        capture_output=True,
        text=True,
        check=True,
    )
    if check.stdout.split()[-1] != "None":
        sys.exit(f"{venv} has a CUDA torch ({check.stdout.strip()}); remove the venv and rerun")
    marker.write_text(wanted, encoding="utf-8")
    return python


# -- the two sides --------------------------------------------------------------------------------


def run_llamaindex(
    python: Path,
    corpus: Path,
    queries_file: Path,
    model: Path,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    out = work / "llamaindex.json"
    cmd = [
        str(python),
        str(SIDE_SCRIPT),
        "--corpus",
        str(corpus),
        "--queries",
        str(queries_file),
        "--model",
        str(model),
        "--out",
        str(out),
        "--top-k",
        str(args.top_k),
        "--modes",
        args.modes,
        "--workdir",
        str(work / "llamaindex"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OFFLINE_ENV)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["process_wall_s"] = time.perf_counter() - t0
    return result


def run_almanac(
    corpus: Path,
    queries: list[tuple[str, str, frozenset[str]]],
    doc_of_path: dict[str, str],
    work: Path,
    chunks: int,
) -> dict[str, Any]:
    from almanac.app.services import build_services
    from almanac.core.evaluation import eval as ev

    t0 = time.perf_counter()
    services = build_services(work / "almanac-kb")
    services.embedder.embed(["warm-up"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = services.ingestor.ingest([corpus])
    ingest_s = time.perf_counter() - t0
    if report.failed:
        print(f"WARNING: Almanac failed on {len(report.failed)} files", file=sys.stderr)
    evaluated = ev.evaluate(
        services.searcher,
        [ev.EvalQuery(qid, text, rel) for qid, text, rel in queries],
        doc_of_path,
        chunks=chunks,
        dataset="scifact",
    )
    chunk_count = services.store.count_chunks()
    services.searcher.close()
    return {
        "embedder": type(services.embedder).__name__,
        "model_load_s": load_s,
        "ingest_s": ingest_s,
        "chunks": chunk_count,
        "ingest_timings": report.timings,
        "ndcg@10": evaluated.metrics["ndcg@10"],
        "recall@10": evaluated.metrics["recall@10"],
        "null_rate": evaluated.metrics["null_rate"],
        "latency": latency_summary([q.latency_ms / 1000.0 for q in evaluated.per_query]),
    }


# -- scoring and output ---------------------------------------------------------------------------


def score_ranked(
    ranked: dict[str, list[str]], queries: list[tuple[str, str, frozenset[str]]]
) -> tuple[float, float]:
    from almanac.core.evaluation.eval import ndcg_at_k, recall_at_k

    nd = [ndcg_at_k(ranked.get(qid, []), rel, CUTOFF) for qid, _, rel in queries]
    rc = [recall_at_k(ranked.get(qid, []), rel, CUTOFF) for qid, _, rel in queries]
    return sum(nd) / len(nd), sum(rc) / len(rc)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def markdown_table(rows: list[dict[str, Any]], title: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| pipeline | ingest (s) | nDCG@10 | Recall@10 | query p50 (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['ingest_s']:.1f} | {r['ndcg@10']:.3f} | {r['recall@10']:.3f} "
            f"| {r['p50_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"vector", "bm25", "fusion"}
    if unknown:
        sys.exit(f"unknown LlamaIndex modes: {', '.join(sorted(unknown))}")
    python = ensure_venv(args.venv, args.torch_find_links) if args.only != "almanac" else None
    if args.setup_only:
        print(f"ready: {python}")
        return 0
    if args.split == "test":
        print(
            "WARNING: SciFact TEST split: report it once, as a final, untuned figure.",
            file=sys.stderr,
            flush=True,
        )
    from almanac.core.embedding.embedding import bundled_model_path

    model = bundled_model_path()
    loads = [load_note("start")]

    docs = load_scifact_corpus(args.eval_dir, limit=args.limit_docs)
    known = {d.doc_id for d in docs}
    qrels = load_qrels(args.eval_dir, args.split)
    texts = load_scifact_queries(args.eval_dir)
    queries: list[tuple[str, str, frozenset[str]]] = []
    for qid, rel in qrels.items():
        relevant = frozenset(d for d in rel if d in known)
        if qid in texts and relevant:
            queries.append((qid, texts[qid], relevant))
    if args.limit_queries is not None:
        queries = queries[: args.limit_queries]
    if not queries:
        sys.exit("no queries with a relevant document in the corpus")

    temp = None if args.workdir else tempfile.mkdtemp(prefix="side-by-side-")
    work = Path(args.workdir or temp or ".")
    try:
        corpus = work / "corpus"
        if corpus.exists():
            shutil.rmtree(corpus)
        for stale in ("almanac-kb", "llamaindex"):
            shutil.rmtree(work / stale, ignore_errors=True)  # both sides ingest from scratch
        stems = write_scifact_folder(docs, corpus)
        doc_of_path = {
            Path(os.path.abspath(corpus / f"{stem}.md")).as_posix(): doc_id
            for stem, doc_id in stems.items()
        }
        queries_file = work / "queries.jsonl"
        queries_file.write_text(
            "".join(json.dumps({"id": q, "text": t}) + "\n" for q, t, _ in queries),
            encoding="utf-8",
        )
        print(f"{len(docs):,} documents, {len(queries)} {args.split} queries; work in {work}")

        li: dict[str, Any] | None = None
        if python is not None:
            loads.append(load_note("before LlamaIndex"))
            li = run_llamaindex(python, corpus, queries_file, model, work, args)
            loads.append(load_note("after LlamaIndex"))
        al: dict[str, Any] | None = None
        if args.only != "llamaindex":
            loads.append(load_note("before Almanac"))
            al = run_almanac(corpus, queries, doc_of_path, work, args.chunks)
            loads.append(load_note("after Almanac"))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    rows: list[dict[str, Any]] = []
    if li is not None:
        ingest = {
            "vector": li["ingest_s"],
            "bm25": li["read_s"] + li["split_s"] + li["bm25_build_s"],
            "fusion": li["ingest_s"] + li["bm25_build_s"],
        }
        for mode in modes:
            ranked = {
                qid: dedupe(stems.get(s, s) for s in ranked_stems)
                for qid, ranked_stems in li["modes"][mode]["ranked"].items()
            }
            nd, rc = score_ranked(ranked, queries)
            lat = latency_summary(li["modes"][mode]["seconds"])
            label = {"vector": "vector (default)", "bm25": "BM25", "fusion": "fusion (RRF)"}[mode]
            rows.append(
                {
                    "name": f"LlamaIndex {label}",
                    "key": f"llamaindex-{mode}",
                    "ingest_s": ingest[mode],
                    "ndcg@10": nd,
                    "recall@10": rc,
                    "p50_ms": lat["p50_ms"],
                    "p95_ms": lat["p95_ms"],
                }
            )
    if al is not None:
        rows.append(
            {
                "name": "Almanac hybrid (app default)",
                "key": "almanac-hybrid",
                "ingest_s": al["ingest_s"],
                "ndcg@10": al["ndcg@10"],
                "recall@10": al["recall@10"],
                "p50_ms": al["latency"]["p50_ms"],
                "p95_ms": al["latency"]["p95_ms"],
            }
        )
    title = (
        f"SciFact {args.split}: {len(docs):,} abstracts, {len(queries)} queries; "
        f"documents ranked from the top {args.top_k} LlamaIndex nodes / "
        f"{args.chunks} Almanac chunks"
    )
    print_table(
        title,
        ["pipeline", "ingest s", "nDCG@10", "R@10", "p50 ms", "p95 ms"],
        [
            [r["name"], r["ingest_s"], r["ndcg@10"], r["recall@10"], r["p50_ms"], r["p95_ms"]]
            for r in rows
        ],
        digits=3,
    )
    ratios: dict[str, dict[str, float]] = {}
    almanac_row = next((r for r in rows if r["key"] == "almanac-hybrid"), None)
    if almanac_row is not None:
        for r in rows:
            if r is almanac_row:
                continue
            ratios[r["key"]] = {
                k: ratio(almanac_row[k], r[k])
                for k in ("ingest_s", "ndcg@10", "recall@10", "p50_ms")
            }
        if ratios:
            print_table(
                "Almanac / LlamaIndex (time: lower is faster; quality: higher is better)",
                ["vs", "ingest", "nDCG@10", "R@10", "p50"],
                [
                    [k, v["ingest_s"], v["ndcg@10"], v["recall@10"], v["p50_ms"]]
                    for k, v in ratios.items()
                ],
                digits=2,
            )
    if li is not None:
        print(
            f"LlamaIndex: {li['documents']:,} documents -> {li['nodes']:,} nodes; model load "
            f"{li['model_load_s']:.1f}s; read {li['read_s']:.1f}s, split {li['split_s']:.1f}s, "
            f"BM25 build {li['bm25_build_s']:.1f}s; subprocess {li['process_wall_s']:.1f}s"
        )
    if al is not None:
        print(
            f"Almanac: {al['chunks']:,} chunks, {al['embedder']}; "
            f"model load {al['model_load_s']:.1f}s; "
            f"null-retrieval rate at the default floor {al['null_rate']:.3f}"
        )
    if args.split == "test" and args.limit_docs is None:
        print(
            f"issue's reference (LlamaIndex, test): vector {REFERENCE['vector']}, BM25 "
            f"{REFERENCE['bm25']}, fused {REFERENCE['fusion']}; "
            f"ingest ~{REFERENCE['ingest_s']:.0f}s"
        )

    md = markdown_table(rows, title)
    if ratios:
        md += (
            "\n| Almanac / ... | ingest | nDCG@10 | Recall@10 | query p50 |\n"
            "|---|---:|---:|---:|---:|\n"
        )
        for key, v in ratios.items():
            md += (
                f"| {key} | {v['ingest_s']:.2f}x | {v['ndcg@10']:.2f}x | "
                f"{v['recall@10']:.2f}x | {v['p50_ms']:.2f}x |\n"
            )
    print()
    print(md)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(md, encoding="utf-8")
    print(f"Markdown table saved to {args.markdown}")
    save_json(
        args.json,
        {
            "benchmark": "side_by_side",
            "split": args.split,
            "documents": len(docs),
            "queries": len(queries),
            "args": {k: str(v) for k, v in vars(args).items()},
            "machine": machine_info(),
            "rows": rows,
            "ratios_almanac_over": ratios,
            "llamaindex": (
                None
                if li is None
                else {k: v for k, v in li.items() if k != "modes"} | {"pins": list(LLAMAINDEX_PINS)}
            ),
            "almanac": al,
            "reference_llamaindex_test": REFERENCE,
            "load": loads,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
