"""Ingest throughput: pure embedding speed vs. the end-to-end ``Ingestor.ingest`` pipeline.

    .venv/bin/python benchmarks/ingest_throughput.py                 # 1,500 SciFact docs
    .venv/bin/python benchmarks/ingest_throughput.py --docs 100      # smoke run
    .venv/bin/python benchmarks/ingest_throughput.py --squad 300 --json benchmarks/out/ingest.json
    .venv/bin/python benchmarks/ingest_throughput.py --embedder fp32   # torch, the model as shipped

Builds a corpus folder (SciFact abstracts as ``# {title}\\n\\n{text}`` Markdown, optionally SQuAD
paragraphs as .txt) in a temporary folder, loads the app's services once, warms the model, then:

(a) pure embedding: parse and chunk every file with the app's reader and Chunker, then time
    ``embedder.embed()`` over exactly the texts the ingestor would embed (``embedding_text``,
    de-duplicated by chunk hash) - once as a single call, and once in the ingestor's windows;
(b) end-to-end: ``Ingestor.ingest`` into a fresh knowledge base, with the report's
    parse/chunk/embed/write split and a finer split from timing wrappers on the store and embedder;
(c) re-ingest of the unchanged folder (hashes only).

The targets: end-to-end chunks/s >= 0.80 x pure-embedding chunks/s, and end-to-end >= 100
chunks/s on 2 cores (issue 6). ``--embedder`` picks the backend (default: the app's, int8).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    Phase,
    add_eval_dir_arg,
    instrument,
    load_note,
    load_scifact_corpus,
    load_squad_paragraphs,
    machine_info,
    measure,
    print_table,
    save_json,
    write_scifact_folder,
    write_squad_folder,
)
from almanac.app.services import build_services
from almanac.core.documents import read_document
from almanac.core.embedding.embedding import (
    DEFAULT_EMBEDDER_BACKEND,
    EMBEDDER_BACKENDS,
    embedding_text,
)
from almanac.core.indexing.ingest import Ingestor, posix
from almanac.core.system.discovery import walk

TARGET_RATIO = 0.80
TARGET_E2E = 100.0  # chunks/s end-to-end on 2 cores


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_dir_arg(p)
    p.add_argument(
        "--docs", type=int, default=1500, help="SciFact documents to ingest (default 1500)"
    )
    p.add_argument(
        "--squad",
        type=int,
        default=0,
        help="also add this many SQuAD paragraphs as .txt (default 0)",
    )
    p.add_argument(
        "--embed-window",
        type=int,
        default=None,
        help="override the Ingestor's embed_window (default: the app's)",
    )
    p.add_argument(
        "--embedder",
        choices=EMBEDDER_BACKENDS,
        default=DEFAULT_EMBEDDER_BACKEND,
        help=f"embedder backend (default: the app's, {DEFAULT_EMBEDDER_BACKEND})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="fp32: torch threads; int8: texts embedded at once, one core each (default: cores)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="int8 only: texts per onnxruntime run (default: OnnxEmbedder's)",
    )
    p.add_argument(
        "--no-windowed",
        action="store_true",
        help="skip the pure-embedding run in the ingestor's window sizes",
    )
    p.add_argument("--no-reingest", action="store_true", help="skip (c)")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where to put the corpus and the KB (default: a fresh folder under /tmp)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work folder afterwards")
    p.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="save the figures as JSON"
    )
    return p.parse_args(argv)


def build_corpus(args: argparse.Namespace, root: Path) -> tuple[Path, int]:
    corpus = root / "corpus"
    docs = load_scifact_corpus(args.eval_dir, limit=args.docs)
    write_scifact_folder(docs, corpus / "scifact")
    files = len(docs)
    if args.squad:
        files += write_squad_folder(
            load_squad_paragraphs(args.eval_dir, limit=args.squad), corpus / "squad"
        )
    return corpus, files


def windows(sizes: list[int], window: int) -> list[tuple[int, int]]:
    """Doc index ranges grouped the way ``Ingestor._embed_stage`` flushes (>= window chunks)."""
    out: list[tuple[int, int]] = []
    start = 0
    pending = 0
    for i, n in enumerate(sizes):
        pending += n
        if pending >= window:
            out.append((start, i + 1))
            start, pending = i + 1, 0
    if start < len(sizes):
        out.append((start, len(sizes)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = (
        Path(args.work_dir)
        if args.work_dir
        else Path(tempfile.mkdtemp(prefix="almanac-bench-ingest-"))
    )
    if args.work_dir and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    loads = [load_note("start")]
    try:
        return run(args, root, loads)
    finally:
        if args.keep:
            print(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path, loads: list[dict]) -> int:
    corpus, n_files = build_corpus(args, root)
    print(f"corpus: {n_files:,} files in {corpus}")

    with measure("model load") as load_phase:
        services = build_services(root / "kb", embedder_backend=args.embedder)
    embedder = services.embedder
    store = services.store
    ingestor = services.ingestor
    if args.embedder == "int8" and (args.threads or args.batch_size):
        from almanac.app.environment import model_cache_dir
        from almanac.core.embedding.onnx_embedder import DEFAULT_BATCH_SIZE, OnnxEmbedder

        embedder = OnnxEmbedder(
            threads=args.threads,
            batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
            cache_dir=model_cache_dir(),
        )
        ingestor = Ingestor(store, embedder, ingestor.chunker)
    elif args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.embed_window is not None:
        ingestor = Ingestor(store, embedder, ingestor.chunker, embed_window=args.embed_window)
    model_file = getattr(embedder, "model_file", None)
    print(
        f"embedder: {args.embedder} ({type(embedder).__name__}"
        + (f", {model_file.stat().st_size / 1e6:.1f} MB {model_file}" if model_file else "")
        + ")"
    )
    chunker = ingestor.chunker
    window = ingestor.embed_window
    print(
        f"model loaded in {load_phase.wall:.1f}s; chunking {chunker.config}; embed window {window}"
    )

    # Warm-up: one small embed, so lazy initialisation isn't charged to any measurement.
    with measure("warm-up") as warm:
        embedder.embed(
            ["warm-up sentence for the embedding model", "a second, slightly longer one."]
        )
    print(f"warm-up embed: {warm.wall * 1000:.0f} ms")

    # -- (a) pure embedding ---------------------------------------------------------------------
    loads.append(load_note("before (a)"))
    files = [f.path for f in walk(corpus)]
    texts: dict[str, str] = {}  # chunk hash -> embedded text, first occurrence order
    per_doc: list[int] = []  # new unique chunks per doc, for the ingestor's windows
    chunks_total = 0
    parse_s = chunk_s = 0.0
    with measure("(a) parse+chunk") as prep:
        for path in files:
            t0 = time.perf_counter()
            document = read_document(path)
            t1 = time.perf_counter()
            chunks = chunker.chunk_document(posix(path), document)
            t2 = time.perf_counter()
            parse_s += t1 - t0
            chunk_s += t2 - t1
            chunks_total += len(chunks)
            before = len(texts)
            for c in chunks:
                texts.setdefault(c.chunk_hash, embedding_text(c.heading_path, c.text))
            per_doc.append(len(texts) - before)
    order = list(texts)
    batch = [texts[h] for h in order]
    tokens = [embedder.count_tokens(t) for t in batch]
    mean_tokens = sum(tokens) / len(tokens) if tokens else 0.0
    mean_chars = sum(len(t) for t in batch) / len(batch) if batch else 0.0
    print(
        f"(a) {len(files):,} files -> {chunks_total:,} chunks ({len(batch):,} unique), "
        f"{mean_tokens:.1f} tokens/chunk; parse {parse_s:.1f}s, chunk {chunk_s:.1f}s"
    )

    with measure("(a) embed, one call") as pure:
        vectors = embedder.embed(batch)
    assert vectors.shape[0] == len(batch)
    pure.extra["chunks"] = len(batch)
    print(f"(a) pure embedding, one call: {len(batch) / pure.wall:.1f} chunks/s ({pure.wall:.1f}s)")

    pure_windowed: Phase | None = None
    if not args.no_windowed:
        groups = windows(per_doc, window)
        offsets = [0]
        for n in per_doc:
            offsets.append(offsets[-1] + n)
        with measure("(a) embed, ingest windows") as pure_windowed:
            for start, end in groups:
                part = batch[offsets[start] : offsets[end]]
                if part:
                    embedder.embed(part)
        pure_windowed.extra["chunks"] = len(batch)
        pure_windowed.extra["windows"] = len(groups)
        print(
            f"(a) pure embedding, {len(groups)} windows: "
            f"{len(batch) / pure_windowed.wall:.1f} chunks/s "
            f"({pure_windowed.wall:.1f}s)"
        )
    loads.append(load_note("after (a)"))

    # -- (b) end-to-end -------------------------------------------------------------------------
    with (
        instrument(embedder, "embed") as emb_t,
        instrument(
            store, "vectors_for_hashes", "write_documents", "ensure_indexes", "sweep_orphans"
        ) as st_t,
        measure("(b) ingest") as e2e,
    ):
        report = ingestor.ingest([corpus])
    loads.append(load_note("after (b)"))
    if report.failed:
        print(
            f"WARNING: {len(report.failed)} files failed, e.g. {report.failed[0]}", file=sys.stderr
        )
    if report.chunks_written != chunks_total:
        print(
            f"WARNING: ingest wrote {report.chunks_written} chunks, (a) chunked {chunks_total}",
            file=sys.stderr,
        )
    fine = {
        "model embed()": emb_t["embed"].seconds,
        "vectors_for_hashes (in 'embed')": st_t["vectors_for_hashes"].seconds,
        "write_documents (in 'write')": st_t["write_documents"].seconds,
        "ensure_indexes (after pipeline)": st_t["ensure_indexes"].seconds,
        "sweep_orphans (in 'scan')": st_t["sweep_orphans"].seconds,
    }
    calls = {
        "model embed()": emb_t["embed"].calls,
        "vectors_for_hashes (in 'embed')": st_t["vectors_for_hashes"].calls,
        "write_documents (in 'write')": st_t["write_documents"].calls,
        "ensure_indexes (after pipeline)": st_t["ensure_indexes"].calls,
        "sweep_orphans (in 'scan')": st_t["sweep_orphans"].calls,
    }

    # -- (c) re-ingest --------------------------------------------------------------------------
    re_report = None
    re_phase: Phase | None = None
    if not args.no_reingest:
        with measure("(c) re-ingest") as re_phase:
            re_report = ingestor.ingest([corpus])
        loads.append(load_note("after (c)"))

    # -- figures --------------------------------------------------------------------------------
    wall = e2e.wall
    pure_rate = len(batch) / pure.wall
    e2e_rate = report.chunks_embedded / wall if wall else float("nan")
    ratio = e2e_rate / pure_rate

    def row(label: str, n_files: int, n_chunks: int, ph: Phase) -> list:
        per_s = n_chunks / ph.wall if ph.wall and n_chunks else float("nan")
        per_cpu = n_chunks / ph.cpu if ph.cpu and n_chunks else float("nan")
        fps = n_files / ph.wall if ph.wall else float("nan")
        return [label, n_files, n_chunks, ph.wall, fps, per_s, per_cpu, ph.cpu_per_wall, ph.load]

    rows = [
        row("(a) parse+chunk only", len(files), chunks_total, prep),
        row("(a) pure embed, one call", len(files), len(batch), pure),
    ]
    if pure_windowed is not None:
        rows.append(row("(a) pure embed, ingest windows", len(files), len(batch), pure_windowed))
    rows.append(row("(b) Ingestor.ingest (fresh KB)", report.added, report.chunks_embedded, e2e))
    if re_report is not None and re_phase is not None:
        rows.append(row("(c) re-ingest unchanged", re_report.unchanged, 0, re_phase))
    print_table(
        f"Ingest throughput ({len(files):,} files, {chunks_total:,} chunks, "
        f"{mean_tokens:.1f} tokens and {mean_chars:.0f} chars per embedded text)",
        [
            "phase",
            "files",
            "chunks",
            "wall s",
            "files/s",
            "chunks/s",
            "chunks/cpu-s",
            "cpu/wall",
            "load1 before->after",
        ],
        rows,
    )

    split_rows = [[k, v, 100 * v / wall, "report.timings"] for k, v in report.timings.items()]
    split_rows += [[k, v, 100 * v / wall, f"{calls[k]} calls"] for k, v in fine.items()]
    split_rows.append(
        ["wall (measured around ingest())", wall, 100.0, f"report.seconds={report.seconds:.2f}"]
    )
    print_table(
        "(b) where the time goes (stages overlap in 3 threads: parse+chunk | embed | write)",
        ["stage", "seconds", "% of wall", "note"],
        split_rows,
    )

    verdict = "MEETS" if ratio >= TARGET_RATIO else "BELOW"
    ratio_rows = [
        [
            f"end-to-end chunks/s (target >= {TARGET_E2E:.0f})",
            e2e_rate,
            "MEETS" if e2e_rate >= TARGET_E2E else "BELOW",
        ],
        ["end-to-end / pure (one call)", ratio, verdict],
    ]
    if pure_windowed is not None:
        w_rate = len(batch) / pure_windowed.wall
        ratio_rows.append(
            [
                "end-to-end / pure (ingest windows)",
                e2e_rate / w_rate,
                "MEETS" if e2e_rate / w_rate >= TARGET_RATIO else "BELOW",
            ]
        )
    cpu_ratio = (report.chunks_embedded / e2e.cpu) / (len(batch) / pure.cpu) if e2e.cpu else 0.0
    ratio_rows.append(["per CPU-second: end-to-end / pure (one call)", cpu_ratio, "(load-robust)"])
    ratio_rows.append(["model embed() time / ingest wall", fine["model embed()"] / wall, ""])
    print_table(
        f"Targets (embedder {args.embedder}; ratios >= {TARGET_RATIO:.2f})",
        ["figure", "value", "target"],
        ratio_rows,
        digits=3,
    )

    if re_report is not None and re_phase is not None:
        print_table(
            "(c) re-ingest of the unchanged folder",
            ["item", "value"],
            [
                ["files unchanged", re_report.unchanged],
                ["chunks embedded", re_report.chunks_embedded],
                ["wall s", re_phase.wall],
                *[[f"timings.{k} s", v] for k, v in re_report.timings.items()],
            ],
        )
    print(
        f"\nmodel load {load_phase.wall:.1f}s (not counted). "
        "cpu/wall = cores this process kept busy "
        f"(2 CPUs on this machine); load1 = 1-minute load average before->after each phase."
    )

    save_json(
        args.json,
        {
            "benchmark": "ingest_throughput",
            "embedder": args.embedder,
            "model_file": str(model_file) if model_file else None,
            "model_bytes": model_file.stat().st_size if model_file else None,
            "machine": machine_info(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "files": len(files),
            "chunks": chunks_total,
            "unique_chunks": len(batch),
            "mean_tokens_per_chunk": mean_tokens,
            "mean_chars_per_chunk": mean_chars,
            "phases": [
                p.as_dict() for p in (prep, pure, pure_windowed, e2e, re_phase) if p is not None
            ],
            "pure_chunks_per_s": pure_rate,
            "e2e_chunks_per_s": e2e_rate,
            "ratio": ratio,
            "ratio_per_cpu_second": cpu_ratio,
            "report": {
                "seconds": report.seconds,
                "timings": report.timings,
                "added": report.added,
                "chunks_written": report.chunks_written,
                "chunks_embedded": report.chunks_embedded,
            },
            "fine_split_s": fine,
            "fine_split_calls": calls,
            "reingest": None
            if re_report is None or re_phase is None
            else {
                "wall_s": re_phase.wall,
                "seconds": re_report.seconds,
                "timings": re_report.timings,
                "unchanged": re_report.unchanged,
            },
            "load": loads,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
