"""The command line: the same core services as the desktop app, headless.

Exit codes: 0 ok, 1 failure (one-line message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from almanac import __version__
from almanac.core.records import Answer, IngestProgress, SearchFilters, SearchResult
from almanac.core.system.offline import enforce_offline_env

if TYPE_CHECKING:
    from almanac.core.answering.answer import AnswerService

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class AnswerDefaults:
    """core.answer's defaults, repeated so that --help need not import the core (checked equal by
    a test)."""

    max_tokens = 320
    short = 160


# The same as core.embedding.EMBEDDER_BACKENDS, repeated so that --help need not import numpy.
EMBEDDER_BACKENDS = ("int8", "fp32")
_BACKEND_HELP = "how the embedding model runs: int8 (ONNX, quantized; default) or fp32 (torch)"


class CliError(Exception):
    """A failure to report as one line on stderr, exit code 1."""


def main(argv: Sequence[str] | None = None, *, open_window: Callable[[], int] | None = None) -> int:
    """Run one command. ``open_window`` runs the bare command (the desktop window; given by
    almanac.launcher, since the command line does not import the UI); without it the bare command
    prints the usage."""
    # First, before any command imports a library that reads these at import time.
    enforce_offline_env()
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        if open_window is None:
            parser.print_usage(sys.stderr)
            return EXIT_USAGE
        return open_window()
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("almanac: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        _fail(str(exc))
    except Exception as exc:  # last resort: a one-line message, never a traceback
        from almanac.core.documents import DocumentError
        from almanac.core.embedding.embedding import EmbeddingError
        from almanac.core.indexing.writer_lock import WriterBusyError
        from almanac.core.llm.base import ModelError
        from almanac.core.store.store import StoreError

        known = (
            ModelError,
            DocumentError,
            EmbeddingError,
            StoreError,
            WriterBusyError,
            FileNotFoundError,
            ValueError,
        )
        _fail(str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}")
    return EXIT_FAILURE


def _fail(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"almanac: error: {first_line}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="almanac",
        description="Offline, document-grounded support assistant.",
    )
    parser.add_argument("--version", action="version", version=f"almanac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    kb_help = "knowledge-base folder (default: $ALMANAC_KB or the user data folder)"
    embedder_help = (
        "folder of a local sentence-transformers model "
        "(default: $ALMANAC_EMBEDDING_MODEL or the bundled all-MiniLM-L6-v2)"
    )

    p = sub.add_parser("ingest", help="index files and folders (incremental)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--kb", type=Path, help=kb_help)
    p.add_argument("--force", action="store_true", help="re-read files even if unchanged")
    p.add_argument(
        "--no-prune", action="store_true", help="keep documents that vanished from the folders"
    )
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=embedder_help)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_ingest)

    p = sub.add_parser("search", help="hybrid search of the knowledge base")
    p.add_argument("query", nargs="?", help="the question or keywords")
    p.add_argument("--kb", type=Path, help=kb_help)
    p.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--jsonl", action="store_true", help='batch: read {"id","text"} lines on stdin')
    p.add_argument("--path", help="only documents under this folder or file")
    p.add_argument("--type", help="only these file types, comma-separated (pdf,md,docx,...)")
    p.add_argument("--since", type=_date, help="only documents modified on or after YYYY-MM-DD")
    p.add_argument("--until", type=_date, help="only documents modified before YYYY-MM-DD")
    p.add_argument("--floor", type=float, help="relevance floor (cosine similarity)")
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=embedder_help)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser("ask", help="answer a question from the knowledge base, with citations")
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--kb", type=Path, help=kb_help)
    p.add_argument(
        "--model", type=Path, metavar="GGUF", help="local GGUF chat model (default: $ALMANAC_MODEL)"
    )
    p.add_argument(
        "--lora", type=Path, metavar="ADAPTER", help="a LoRA adapter GGUF applied to --model"
    )
    p.add_argument("--server", metavar="URL", help="an OpenAI-compatible chat server instead")
    p.add_argument("--server-model", metavar="ID", help="model id on that server")
    p.add_argument("--json", action="store_true", help="print the answer record as JSON")
    p.add_argument(
        "--jsonl",
        action="store_true",
        help='batch: read {"id","text"} lines on stdin, one JSON answer line each',
    )
    p.add_argument(
        "--show-unsupported",
        action="store_true",
        help="also print a withheld answer (one its sources don't support), labelled",
    )
    # Unset options take the user's Settings (the desktop app's), whose defaults are these.
    p.add_argument("-k", type=int, help="number of sources (default: Settings, 5)")
    p.add_argument(
        "--max-tokens",
        type=int,
        help=f"answer length cap (default: Settings, {AnswerDefaults.max_tokens}; "
        f"short factual questions get at most {AnswerDefaults.short})",
    )
    p.add_argument(
        "--temperature", type=float, help="sampling temperature (default: Settings, 0.2)"
    )
    p.add_argument("--ctx", type=int, help="context size in tokens (default: Settings, 4096)")
    p.add_argument("--gpu-layers", help="auto, all, none or a number (default: Settings, auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: Settings, physical cores)")
    p.add_argument(
        "--general",
        action="store_true",
        help="when the documents have nothing, allow a labelled general-knowledge answer",
    )
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=embedder_help)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.set_defaults(handler=_cmd_ask)

    p = sub.add_parser(
        "model", help="check a GGUF model file against the catalog, or list the catalog"
    )
    p.add_argument("file", nargs="?", type=Path, metavar="GGUF", help="the model file to check")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_model)

    p = sub.add_parser("status", help="documents, chunks and per-file errors")
    p.add_argument("--kb", type=Path, help=kb_help)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("remove", help="remove files or folders from the index")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--kb", type=Path, help=kb_help)
    p.set_defaults(handler=_cmd_remove)

    p = sub.add_parser("watch", help="keep the index in sync with folders while running")
    p.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    p.add_argument("--kb", type=Path, help=kb_help)
    p.add_argument(
        "--polling", action="store_true", help="poll instead of OS events (network drives)"
    )
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=embedder_help)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr")
    p.set_defaults(handler=_cmd_watch)

    _add_eval_parser(sub, embedder_help)

    from almanac.finetune.cli_args import add_finetune_parser  # torch-free; imports nothing heavy

    add_finetune_parser(sub)
    return parser


def _date(text: str) -> float:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc
    return dt.datetime(day.year, day.month, day.day).timestamp()


def _kb(args: argparse.Namespace) -> Path:
    from almanac.app.services import default_kb_dir

    kb: Path | None = args.kb
    return kb if kb is not None else default_kb_dir()


def _embedding_model(args: argparse.Namespace) -> Path | None:
    from almanac.app.services import default_embedding_model

    chosen: Path | None = args.embedding_model
    return chosen if chosen is not None else default_embedding_model()


# Control characters from file names and document text must never reach a terminal raw:
# "\x1b]0;...\x07" retitles it, "\x1b[2J" clears it. C0, DEL, C1, and the bidirectional
# overrides that make a name read differently from what it is.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# The bytes of a name that were not UTF-8 (see discovery.path_key), shown as \xNN.
_NAME_BYTES = re.compile("[\U0010ff80-\U0010ffff]")


def _shown(text: str) -> str:
    """``text`` safe to print: each control character as a visible escape (\\x1b)."""
    text = _NAME_BYTES.sub(lambda m: f"\\x{ord(m.group()) - 0x10FF00:02x}", text)
    return _CONTROL_CHARS.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) <= 0xFF else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def _json_line(payload: object) -> str:
    # JSON escapes C0 itself; C1 controls and bidi overrides would still be printed raw.
    return _CONTROL_CHARS.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(payload, ensure_ascii=False)
    )


# -- ingest -------------------------------------------------------------------------------------


def _cmd_ingest(args: argparse.Namespace) -> int:
    from almanac.app.services import build_services

    for path in args.paths:
        if not path.exists() and not path.is_symlink():
            raise CliError(f"no such file or folder: {path}")
    services = build_services(
        _kb(args), embedding_model=_embedding_model(args), embedder_backend=args.embedder
    )
    printer = _ProgressPrinter(sys.stderr, enabled=not args.quiet)
    report = services.ingestor.ingest(
        args.paths, progress=printer, prune=not args.no_prune, force=args.force
    )
    printer.finish()
    if args.json:
        print(
            json.dumps(
                {
                    "added": report.added,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "removed": report.removed,
                    "failed": [{"path": f.path, "error": f.message} for f in report.failed],
                    "chunks_written": report.chunks_written,
                    "chunks_embedded": report.chunks_embedded,
                    "chunks_reused": report.chunks_reused,
                    "seconds": round(report.seconds, 3),
                    "timings": {k: round(v, 3) for k, v in report.timings.items()},
                }
            )
        )
    else:
        rate = report.chunks_written / report.seconds if report.seconds > 0 else 0.0
        print(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"removed {report.removed}, failed {len(report.failed)}; "
            f"{report.chunks_written} chunks ({report.chunks_embedded} embedded, "
            f"{report.chunks_reused} reused) in {report.seconds:.1f} s ({rate:.1f} chunks/s)"
        )
        for failure in report.failed:
            print(f"  error: {_shown(failure.path)}: {_shown(failure.message)}")
    return EXIT_OK


class _ProgressPrinter:
    """One self-updating line on a terminal; a line every few seconds otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = stream.isatty()
        self._last = 0.0
        self._printed = False

    def __call__(self, p: IngestProgress) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not self._tty and now - self._last < 2.0 and p.files_done < p.files_total:
            return
        self._last = now
        line = (
            f"files {p.files_done}/{p.files_total} ({p.files_skipped} unchanged, "
            f"{p.files_failed} failed), chunks {p.chunks_done}, {p.chunks_per_second:.1f} chunks/s"
        )
        if self._tty:
            self._stream.write("\r\x1b[K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._printed = True

    def finish(self) -> None:
        if self._enabled and self._tty and self._printed:
            self._stream.write("\n")
            self._stream.flush()


# -- search -------------------------------------------------------------------------------------


def _cmd_search(args: argparse.Namespace) -> int:
    from almanac.app.services import build_services
    from almanac.core.answering.citations import citation_location

    if args.k < 1:
        print("almanac search: error: -k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.jsonl == bool(args.query):
        print("almanac search: error: give a QUERY or --jsonl (not both)", file=sys.stderr)
        return EXIT_USAGE
    kb = _kb(args)
    from almanac.core.store.store import read_meta

    read_meta(kb)  # fail fast, before loading the embedder, when there is no knowledge base
    filters = SearchFilters(
        path_prefix=str(Path(args.path).absolute().as_posix()) if args.path else None,
        kinds=tuple(t.strip() for t in args.type.split(",") if t.strip()) if args.type else (),
        modified_after=args.since,
        modified_before=args.until,
    )
    searcher = build_services(
        kb, embedding_model=_embedding_model(args), embedder_backend=args.embedder
    ).searcher
    if args.jsonl:
        for lineno, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                qid, text = item["id"], str(item["text"])
            except (ValueError, KeyError, TypeError) as exc:
                raise CliError(
                    f'stdin line {lineno}: expected {{"id": ..., "text": ...}} ({exc})'
                ) from exc
            result = searcher.search(text, args.k, filters, floor=args.floor)
            print(_json_line({"id": qid, **_result_json(result)}), flush=True)
        return EXIT_OK
    result = searcher.search(args.query, args.k, filters, floor=args.floor)
    if args.json:
        print(_json_line({"query": result.query, **_result_json(result)}))
        return EXIT_OK
    if not result.relevant:
        best = (
            ""
            if result.best_similarity is None
            else f" (best similarity {result.best_similarity:.2f})"
        )
        print(f"Nothing relevant found in your documents{best}.")
        return EXIT_OK
    for i, hit in enumerate(result.hits, 1):
        where = _shown(citation_location(hit.path, hit.page, hit.heading, full_path=True))
        sim = f", similarity {hit.vector_score:.2f}" if hit.vector_score is not None else ""
        print(f"{i}. {where}  [score {hit.score:.4f}{sim}]")
        snippet = " ".join(hit.text.split())
        print(f"   {_shown(snippet[:300])}{'...' if len(snippet) > 300 else ''}")
    return EXIT_OK


def _result_json(result: SearchResult) -> dict[str, object]:
    return {
        "relevant": result.relevant,
        "best_similarity": result.best_similarity,
        "hits": [hit.to_json() for hit in result.hits],
    }


# -- ask ----------------------------------------------------------------------------------------


def _cmd_ask(args: argparse.Namespace) -> int:
    from almanac.app.answering import (
        AnswerOverrides,
        EngineOverrides,
        build_answer_service,
        build_engine_from_settings,
    )
    from almanac.app.bootstrap import bootstrap
    from almanac.app.services import build_services
    from almanac.core.store.store import read_meta

    boot = bootstrap()
    settings = boot.settings
    answers = AnswerOverrides(
        sources=args.k,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        allow_general_knowledge=args.general,
    )
    engines = EngineOverrides(
        n_ctx=args.ctx,
        gpu_layers=args.gpu_layers,
        threads=args.threads,
        server_url=args.server,
        server_model=args.server_model,
    )
    k = args.k if args.k is not None else settings.sources
    max_tokens = args.max_tokens if args.max_tokens is not None else settings.max_tokens
    ctx = args.ctx if args.ctx is not None else settings.context_size
    if k < 1 or max_tokens < 1 or ctx < 256:
        print("almanac ask: error: -k and --max-tokens must be >= 1, --ctx >= 256", file=sys.stderr)
        return EXIT_USAGE
    if args.jsonl == bool(args.question):
        print("almanac ask: error: give a QUESTION or --jsonl (not both)", file=sys.stderr)
        return EXIT_USAGE
    no_local_model = args.model is None and boot.environment.model is None
    if args.lora is not None and (args.server or no_local_model):
        print("almanac ask: error: --lora needs a local --model", file=sys.stderr)
        return EXIT_USAGE
    kb = _kb(args)
    read_meta(kb)
    services = build_services(
        kb,
        embedding_model=_embedding_model(args),
        embedder_backend=args.embedder or settings.embedder_backend,
    )
    model, lora = None, None
    if not args.server:
        model, lora = _chosen_model(args.model, args.lora)
    engine = build_engine_from_settings(model, settings, lora=lora, overrides=engines)
    try:
        if engine is not None and not (args.json or args.jsonl):
            info = engine.info
            adapter = f", LoRA {info.lora}" if info.lora else ""
            print(
                f"model: {info.model}{adapter} - {info.backend}, context {info.n_ctx}, "
                f"chat template: {info.chat_template}",
                file=sys.stderr,
            )
        service = build_answer_service(services, engine, settings, answers)
        if args.jsonl:
            return _ask_jsonl(service, sys.stdin)
        return _ask_one(service, args)
    finally:
        if engine is not None:
            engine.close()


def _chosen_model(explicit: Path | None, lora: Path | None) -> tuple[Path | None, Path | None]:
    """The model and adapter to load (see ``choose_model``); a missing or damaged default model
    is said once on stderr and the answers are the passages alone."""
    from almanac.app.services import choose_model
    from almanac.core.llm.default_model import DefaultModelError

    choice = choose_model(explicit, lora)
    if choice.problem is not None:
        print(f"almanac: {choice.problem}; answering with passages only", file=sys.stderr)
        return None, None
    if choice.prepare is not None:
        try:
            return choice.prepare(), choice.lora
        except DefaultModelError as exc:
            print(f"almanac: {exc}; answering with passages only", file=sys.stderr)
            return None, None
    return choice.path, choice.lora


def _ask_one(service: AnswerService, args: argparse.Namespace) -> int:
    import threading

    stop = threading.Event()
    outcome: list[Answer | BaseException] = []

    def on_token(piece: str) -> None:
        if not args.json:
            sys.stdout.write(piece)
            sys.stdout.flush()

    def work() -> None:
        try:
            outcome.append(service.answer(args.question, on_token=on_token, stop=stop))
        except BaseException as exc:
            outcome.append(exc)

    # Generation runs on a worker so Ctrl+C can stop it cleanly (within one token).
    worker = threading.Thread(target=work, name="almanac-ask", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        stop.set()
        worker.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
        return EXIT_OK
    _print_answer_footer(result, show_unsupported=args.show_unsupported)
    return EXIT_OK


def _ask_jsonl(service: AnswerService, lines: TextIO) -> int:
    """One answer line per question line, the model loaded once. A bad line or a failed answer
    gives an ``error`` line for its id (or line number) and the run goes on; exit 1 if any did."""
    failed = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        qid: object = lineno
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not a JSON object")
            qid = item.get("id", lineno)
            text = item["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError('"text" must be a non-empty string')
        except (ValueError, KeyError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            failed = True
            error = f'line {lineno}: expected {{"id": ..., "text": ...}} ({reason})'
            print(json.dumps({"id": qid, "error": error}, ensure_ascii=False), flush=True)
            continue
        try:
            answer = service.answer(text)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one question's failure is that line's, not the run's
            failed = True
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(json.dumps({"id": qid, "error": message}, ensure_ascii=False), flush=True)
            continue
        print(json.dumps({"id": qid, **answer.to_json()}, ensure_ascii=False), flush=True)
    return EXIT_FAILURE if failed else EXIT_OK


def _print_answer_footer(answer: Answer, *, show_unsupported: bool = False) -> None:
    from almanac.core.answering.citations import citation_location

    print()
    if answer.stopped:
        print("[stopped]")
    if answer.withheld:
        if show_unsupported:
            print("\nUnsupported by your documents (the model's answer, withheld):")
            for line in answer.unsupported_text.splitlines():
                print(f"  | {line}")
        else:
            print(
                "(the model's answer was withheld: its sources don't support it; "
                "--show-unsupported prints it)"
            )
    if answer.citations and answer.mode.value == "model":
        print("\nSources:")
        for c in answer.citations:
            print(f"  [{c.number}] {citation_location(c.path, c.page, c.heading, full_path=True)}")
    if answer.also_retrieved:
        print("Also retrieved:")
        for c in answer.also_retrieved:
            print(f"  [{c.number}] {citation_location(c.path, c.page, full_path=True)}")
    for sentence in answer.unsupported_sentences:
        print(f"  (not supported by its sources) {sentence}")
    if answer.invalid_markers:
        dropped = ", ".join(f"[{n}]" for n in answer.invalid_markers)
        print(f"almanac: note: dropped citation markers with no source: {dropped}", file=sys.stderr)


# -- model ----------------------------------------------------------------------------------------


def _cmd_model(args: argparse.Namespace) -> int:
    from almanac.core.llm.catalog import add_model, load_catalog
    from almanac.core.llm.gguf_file import describe

    catalog = load_catalog()
    if args.file is None:
        default = _default_model_entry()
        if args.json:
            entries = [default, *(dataclasses.asdict(e) for e in catalog)]
            print(json.dumps(entries, ensure_ascii=False))
            return EXIT_OK
        print(f"Default model: {default['name']}")
        if default["problem"]:
            print(f"  not usable: {default['problem']} (answers are the passages alone)")
        else:
            print(f"  base {default['path']}")
            print(f"  adapter {default['adapter']}")
            print(f"  model card {default['model_card']}")
        print("Recommended models (download them yourself, then: almanac model FILE.gguf):")
        for e in catalog:
            size = f"{e.size_bytes / 1e9:.2f} GB" if e.size_bytes else "size unverified"
            known = "sha256 known" if e.sha256 else "sha256 unverified"
            print(f"  {e.name}: {e.file_name} ({e.quantization}, {size}, {known}, {e.licence})")
        return EXIT_OK
    added = add_model(args.file, catalog)
    info = added.info
    if added.verified:
        status = "verified against the catalog (sha256 matches)"
    elif added.entry is not None:
        status = "in the catalog, but the catalog has no hash for it: not verified"
    else:
        status = "not in the catalog: not verified"
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(added.path),
                    "sha256": added.sha256,
                    "verified": added.verified,
                    "catalog_entry": added.entry.name if added.entry else None,
                    "architecture": info.architecture,
                    "quantization": info.quantization,
                    "context_length": info.context_length,
                    "chat_template": info.chat_template is not None,
                    "parameters": info.parameter_count,
                    "size_bytes": info.size_bytes,
                }
            )
        )
        return EXIT_OK
    print(f"{added.path.name}: {describe(info)}")
    print(f"  architecture {info.architecture}, context {info.context_length or '?'} tokens")
    print(
        f"  chat template: {'stored in the file' if info.chat_template else 'none (ChatML used)'}"
    )
    print(f"  sha256 {added.sha256}: {status}")
    return EXIT_OK


def _default_model_entry() -> dict[str, Any]:
    """Almanac's default model as a listing entry (``"default": true``), usable or not."""
    from almanac.app.environment import read_environment
    from almanac.core.llm.default_model import DefaultModelError, resolve_default_model

    entry: dict[str, Any] = {
        "default": True,
        "name": "Almanac default model",
        "quantization": None,
        "problem": None,
    }
    try:
        found = resolve_default_model(read_environment().default_model_dir)
    except DefaultModelError as exc:
        entry["problem"] = str(exc)
        return entry
    entry.update(
        name=found.name,
        description=found.description,
        path=str(found.path),
        file_name=found.path.name,
        quantization=found.quantization,
        adapter=str(found.adapter) if found.adapter else None,
        sha256=found.base_sha256,
        adapter_sha256=found.adapter_sha256,
        model_card=str(found.card) if found.card else None,
    )
    return entry


# -- status / remove ----------------------------------------------------------------------------


def _cmd_status(args: argparse.Namespace) -> int:
    from almanac.core.store.store import Store

    kb = _kb(args)
    store = Store.open_existing(kb)
    docs = sorted(store.documents().values(), key=lambda d: d.path)
    by_status: dict[str, int] = {}
    for doc in docs:
        by_status[doc.status.value] = by_status.get(doc.status.value, 0) + 1
    chunks = store.count_chunks()
    if args.json:
        print(
            _json_line(
                {
                    "kb": str(kb),
                    "documents": len(docs),
                    "chunks": chunks,
                    "by_status": by_status,
                    "files": [
                        {
                            "path": d.path,
                            "kind": d.kind,
                            "status": d.status.value,
                            "error": d.error or None,
                            "chunks": d.chunk_count,
                            "size": d.size,
                            "indexed_at": d.indexed_at,
                        }
                        for d in docs
                    ],
                }
            )
        )
        return EXIT_OK
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
    print(f"Knowledge base: {_shown(str(kb))}")
    print(f"Documents: {len(docs)} ({counts}); chunks: {chunks}")
    for doc in docs:
        if doc.error:
            label = "error" if doc.status.value == "error" else "warning"
            print(f"  {label}: {_shown(doc.path)}: {_shown(doc.error)}")
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    from almanac.core.indexing.ingest import posix
    from almanac.core.indexing.writer_lock import exclusive_writer
    from almanac.core.store.store import Store

    kb = _kb(args)
    store = Store.open_existing(kb)
    with exclusive_writer(kb):
        removed = store.remove_under([posix(p) for p in args.paths])
    if removed == 0:
        raise CliError(
            "nothing to remove: no indexed document under " + ", ".join(map(str, args.paths))
        )
    print(f"removed {removed} document{'s' if removed != 1 else ''}")
    return EXIT_OK


# -- watch --------------------------------------------------------------------------------------


def _cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from almanac.app.services import build_services
    from almanac.core.indexing.sync import BatchResult, FolderSync

    for folder in args.folders:
        if not folder.is_dir():
            raise CliError(f"no such folder: {folder}")
    services = build_services(
        _kb(args), embedding_model=_embedding_model(args), embedder_backend=args.embedder
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()  # the main thread shuts down in order; a handler must not do the work

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    reported: dict[str, str] = {}  # path -> the failure already printed for it

    def on_batch(b: BatchResult) -> None:
        if b.changed or b.reconcile:  # else touched or saved unchanged: nothing to say
            label = "reconciled" if b.reconcile else "synced"
            print(
                f"{label}: added {b.added}, updated {b.updated}, removed {b.removed}, "
                f"failed {b.failed}; {b.chunks_embedded} chunks embedded in {b.seconds:.2f} s",
                flush=True,
            )
        # Each failed file once with its reason, not again at every reconciliation.
        for failure in b.failures:
            if reported.get(failure.path) != failure.message:
                reported[failure.path] = failure.message
                print(f"  error: {_shown(failure.path)}: {_shown(failure.message)}", flush=True)

    def on_error(message: str) -> None:
        # The sync's own failures (a full disk, another writer), once each; retried with back-off.
        if message:
            print(f"almanac: error: {_shown(message)}", file=sys.stderr, flush=True)
        else:
            print(
                "almanac: recovered: the index is being updated again", file=sys.stderr, flush=True
            )

    sync = FolderSync(
        services.ingestor,
        args.folders,
        polling=args.polling,
        on_batch=on_batch,
        on_error=on_error,
    )
    stopped = True
    try:
        sync.start()
        if not args.quiet:
            names = ", ".join(_shown(str(f)) for f in args.folders)
            print(f"watching {names} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        # SIGTERM must end the process within 2 s whatever it is doing: the ingest in progress is
        # cancelled, and one stuck in a slow step is abandoned (everything it committed is kept;
        # the next start reconciles the rest, as after a crash).
        stopped = sync.stop(timeout=1.5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.quiet:
        print("stopped", file=sys.stderr, flush=True)
    if not stopped:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)  # the sync thread can't be joined; interpreter shutdown could wait on it
    return EXIT_OK


# -- eval ---------------------------------------------------------------------------------------


def _add_eval_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], embedder_help: str
) -> None:
    p = sub.add_parser(
        "eval",
        help="measure retrieval (and, with a model, answer) quality on a labelled dataset",
        description=(
            "Index a labelled dataset and score the search against its labels. With a model "
            "(--model, --server or $ALMANAC_MODEL) a sample of the questions is also answered, "
            "with questions from another dataset as ones the documents cannot answer."
        ),
    )
    p.add_argument("--beir", type=Path, metavar="DIR", help="a BEIR dataset folder")
    p.add_argument(
        "--split", choices=("train", "test"), default="train", help="BEIR qrels split (train)"
    )
    p.add_argument("--squad", type=Path, metavar="FILE", help="a SQuAD v1.1 JSON file")
    p.add_argument("--folder", type=Path, metavar="DIR", help="a folder of documents (with --csv)")
    p.add_argument("--csv", type=Path, metavar="FILE", help='questions with "Source Docs" labels')
    p.add_argument(
        "--kb", type=Path, help="knowledge base to build or reuse (default: a temporary one)"
    )
    p.add_argument("--limit", type=int, metavar="N", help="evaluate the first N queries")
    p.add_argument("--chunks", type=int, default=100, help="chunks retrieved per query (100)")
    p.add_argument("--floor", type=float, help="relevance floor for the null-retrieval rate")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--report", type=Path, metavar="DIR", help="also write DIR/report.md with PNG plots"
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="progress bars on stderr even when it is not a terminal",
    )
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=embedder_help)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    g = p.add_argument_group("answers (when a model is given or $ALMANAC_MODEL is set)")
    g.add_argument(
        "--model", type=Path, metavar="GGUF", help="local GGUF chat model (default: $ALMANAC_MODEL)"
    )
    g.add_argument("--server", metavar="URL", help="an OpenAI-compatible chat server instead")
    g.add_argument("--server-model", metavar="ID", help="model id on that server")
    g.add_argument("--no-answers", action="store_true", help="retrieval only, even with a model")
    g.add_argument(
        "--answers",
        type=int,
        default=20,
        metavar="N",
        help="labelled questions to answer, a seeded random sample (default 20)",
    )
    g.add_argument(
        "--negatives",
        metavar="FILE_OR_DIR",
        help=(
            "questions the documents cannot answer: a BEIR folder, a SQuAD file, JSON, JSON lines,"
            " CSV (Question column) or text lines; 'none' for no negatives. Default: the other "
            "shared dataset beside this one (SQuAD for BEIR, ../scifact for SQuAD)"
        ),
    )
    g.add_argument(
        "--negative-count",
        type=int,
        metavar="N",
        help="negatives to ask, a seeded random sample (default: as many as --answers)",
    )
    g.add_argument("--sources", type=int, default=5, help="sources per answer (default 5)")
    g.add_argument("--max-tokens", type=int, default=256, help="answer length limit (256)")
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0)")
    g.add_argument("--ctx", type=int, default=4096, help="context size in tokens")
    g.add_argument("--gpu-layers", default="auto", help="auto, all, none or a number")
    g.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    p.set_defaults(handler=_cmd_eval)


def _eval_usage_error(args: argparse.Namespace) -> str | None:
    chosen = [flag for flag in ("beir", "squad", "folder") if getattr(args, flag) is not None]
    if len(chosen) != 1:
        return "give exactly one dataset: --beir DIR, --squad FILE or --folder DIR --csv FILE"
    if (args.folder is None) != (args.csv is None):
        return "--folder and --csv go together"
    if args.limit is not None and args.limit < 1:
        return "--limit must be at least 1"
    if args.chunks < 1:
        return "--chunks must be at least 1"
    if args.floor is not None and not -1.0 <= args.floor <= 1.0:
        return "--floor is a cosine similarity between -1 and 1"
    if args.answers < 1 or (args.negative_count is not None and args.negative_count < 0):
        return "--answers must be at least 1 and --negative-count at least 0"
    if args.sources < 1 or args.max_tokens < 1 or args.ctx < 256:
        return "--sources and --max-tokens must be >= 1, --ctx >= 256"
    if not 0.0 <= args.temperature <= 2.0:
        return "--temperature must be between 0 and 2"
    return None


def _eval_negatives(args: argparse.Namespace, positives: set[str]) -> tuple[list[str], str]:
    """The sampled negative questions and where they came from."""
    from almanac.core.evaluation import eval_answers as ea

    spec: str | None = args.negatives
    if spec is not None and spec.strip().lower() == "none":
        return [], "none"
    source = Path(spec) if spec is not None else ea.default_negatives(args.beir, args.squad)
    if source is None:
        print(
            "almanac eval: note: no negative questions (give --negatives FILE_OR_DIR): "
            "the refusal rate on unanswerable questions is not measured",
            file=sys.stderr,
        )
        return [], "none"
    questions = [q for q in ea.read_questions(source) if q not in positives]
    if not questions:
        raise CliError(f"no negative questions in {source}")
    count = args.answers if args.negative_count is None else args.negative_count
    return ea.sample(questions, count, seed=1), str(source)


def _check_reused_kb(
    kb: Path, indexed: set[str], doc_of_path: dict[str, str], dataset: str
) -> None:
    """A knowledge base built from other files would score every query 0 without complaint."""
    matched = len(indexed & set(doc_of_path))
    if matched == 0:
        raise CliError(
            f"the knowledge base in {kb} holds none of the {len(doc_of_path)} documents of "
            f"{dataset} (it was built from other files); give --kb a new folder or leave it out"
        )
    if matched < len(doc_of_path):
        print(
            f"almanac eval: warning: {len(doc_of_path) - matched} of the {len(doc_of_path)} "
            f"documents of {dataset} are not in {kb}; their queries can't find them",
            file=sys.stderr,
        )
    if len(indexed) > matched:
        print(
            f"almanac eval: warning: {kb} also holds {len(indexed) - matched} document(s) "
            "that are not part of the dataset",
            file=sys.stderr,
        )


def _cmd_eval(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from almanac.app.services import build_engine, build_services, default_model
    from almanac.core.answering.answer import AnswerConfig, AnswerService
    from almanac.core.evaluation import eval as ev
    from almanac.core.evaluation.eval_answers import AnswerReport, evaluate_answers, sample
    from almanac.core.llm.base import Engine
    from almanac.core.store.store import read_meta
    from almanac.tooling.eval_progress import ProgressBar

    problem = _eval_usage_error(args)
    if problem is not None:
        print(f"almanac eval: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.beir is not None and args.split == "test":
        print(
            "almanac eval: warning: report the test split once, untuned (tune on train)",
            file=sys.stderr,
        )
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise CliError(f"--report needs a folder, and {args.report} is a file")

    if args.beir is not None:
        evalset = ev.load_beir(args.beir, args.split, limit_queries=args.limit)
    elif args.squad is not None:
        evalset = ev.load_squad(args.squad, limit_queries=args.limit)
    else:
        evalset = ev.load_folder_csv(args.folder, args.csv, limit_queries=args.limit)
    if not evalset.queries:
        raise CliError(f"no labelled queries in {evalset.name}")
    if evalset.skipped_queries:
        print(
            f"almanac eval: {evalset.skipped_queries} question(s) skipped: "
            "no file matched their source documents",
            file=sys.stderr,
        )

    model = None if args.no_answers else (args.model or default_model())
    answering = not args.no_answers and (model is not None or bool(args.server))
    negatives: list[str] = []
    negatives_source = "none"
    if answering:  # bad input fails here, before the long indexing
        negatives, negatives_source = _eval_negatives(args, {q.text for q in evalset.queries})
    show_progress = args.progress or sys.stderr.isatty()

    engine: Engine | None = None
    temp: str | None = None
    if args.kb is None:
        temp = tempfile.mkdtemp(prefix="almanac-eval-")
        kb = Path(temp) / "kb"
        docs_dir = Path(temp) / "docs"
    else:
        kb = args.kb
        docs_dir = kb.parent / f"{kb.name}-docs"
    answers: AnswerReport | None = None
    try:
        if answering:
            engine = build_engine(
                model,
                server_url=args.server,
                server_model=args.server_model,
                n_ctx=args.ctx,
                gpu_layers=args.gpu_layers,
                threads=args.threads,
            )
        doc_of_path = ev.materialize(evalset, docs_dir)
        services = build_services(
            kb, embedding_model=_embedding_model(args), embedder_backend=args.embedder
        )
        try:
            try:
                read_meta(kb)
                indexed = services.store.count_chunks() > 0
            except Exception:
                indexed = False
            if indexed:
                _check_reused_kb(kb, set(services.store.documents()), doc_of_path, evalset.name)
                print(f"reusing the index in {kb}", file=sys.stderr)
            else:
                source = evalset.folder if evalset.folder is not None else docs_dir
                print(f"indexing {len(doc_of_path)} documents from {source}", file=sys.stderr)
                bar = ProgressBar(sys.stderr, "indexing", enabled=show_progress, unit="files")
                ingest = services.ingestor.ingest(
                    [source],
                    progress=lambda p: bar.update(
                        p.files_done, p.files_total, f"{p.chunks_done} chunks"
                    ),
                )
                bar.close()
                if ingest.failed:
                    print(f"almanac eval: {len(ingest.failed)} file(s) failed", file=sys.stderr)
            bar = ProgressBar(sys.stderr, "queries", enabled=show_progress)
            report = ev.evaluate(
                services.searcher,
                evalset.queries,
                doc_of_path,
                chunks=args.chunks,
                floor=args.floor,
                progress=bar.update,
                dataset=evalset.name,
            )
            bar.close()
            if engine is not None:
                service = AnswerService(
                    services.searcher,
                    services.embedder,
                    engine,
                    config=AnswerConfig(
                        sources=args.sources,
                        max_tokens=args.max_tokens,
                        temperature=args.temperature,
                    ),
                )
                bar = ProgressBar(sys.stderr, "answers", enabled=show_progress)
                # The default model trained on SQuAD's other articles: answer only held-out ones.
                answerable = ev.squad_heldout(evalset.queries) if args.squad else evalset.queries
                answers = evaluate_answers(
                    service,
                    sample(answerable, args.answers, seed=0),
                    negatives,
                    doc_of_path=doc_of_path,
                    progress=bar.update,
                    negatives_source=negatives_source,
                )
                bar.close()
        finally:
            services.searcher.close()
    finally:
        if engine is not None:
            engine.close()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    if args.report is not None:
        from almanac.tooling.eval_report import write_report

        texts = {q.id: q.text for q in evalset.queries}
        written = write_report(args.report, report, answers, texts)
        print(f"report: {written[0]} ({len(written) - 1} plots)", file=sys.stderr)
    if args.json:
        payload = report.to_json()
        if answers is not None:
            payload["answers"] = answers.to_json()
        print(json.dumps(payload, ensure_ascii=False))
        return EXIT_OK
    print(
        f"{report.dataset}: {report.queries} queries, top {report.chunks} chunks, "
        f"floor {report.floor:.2f}"
    )
    _print_rows(report.table_rows())
    if answers is not None:
        print(
            f"\nanswers by {answers.model}: {answers.positives} labelled questions, "
            f"{answers.negatives} unanswerable (from {answers.negatives_source})"
        )
        _print_rows(answers.table_rows())
    return EXIT_OK


def _print_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'metric'.ljust(width)}  {'value':>8}")
    print(f"{'-' * width}  {'-' * 8}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value:>8}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
