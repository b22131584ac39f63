"""``almanac ask``: answer questions from the knowledge base, with citations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from almanac.core.records import Answer

if TYPE_CHECKING:
    from almanac.core.answering.answer import AnswerService
from almanac.cli.common import (
    _BACKEND_HELP,
    EMBEDDER_BACKENDS,
    EMBEDDER_HELP,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    KB_HELP,
    _embedding_model,
    _kb,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ask", help="answer a question from the knowledge base, with citations")
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--kb", type=Path, help=KB_HELP)
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
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=EMBEDDER_HELP)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.set_defaults(handler=_cmd_ask)


class AnswerDefaults:
    """core.answer's defaults, repeated so that --help need not import the core (checked equal by
    a test)."""

    max_tokens = 320
    short = 160


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
    model, lora, chat_format = None, None, None
    if not args.server:
        model, lora, chat_format = _chosen_model(args.model, args.lora)
    engine = build_engine_from_settings(
        model, settings, lora=lora, overrides=engines, chat_format=chat_format
    )
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


def _chosen_model(
    explicit: Path | None, lora: Path | None
) -> tuple[Path | None, Path | None, str | None]:
    """The model, adapter and chat format to load (see ``choose_model``); a missing or damaged
    default model is said once on stderr and the answers are the passages alone."""
    from almanac.app.services import choose_model
    from almanac.core.llm.default_model import DefaultModelError

    choice = choose_model(explicit, lora)
    if choice.problem is not None:
        print(f"almanac: {choice.problem}; answering with passages only", file=sys.stderr)
        return None, None, None
    if choice.prepare is not None:
        try:
            return choice.prepare(), choice.lora, choice.chat_format
        except DefaultModelError as exc:
            print(f"almanac: {exc}; answering with passages only", file=sys.stderr)
            return None, None, None
    return choice.path, choice.lora, choice.chat_format


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
