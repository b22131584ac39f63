"""Answer quality: several GGUF models side by side on a held-out support knowledge base.

Each model answers every question of ``benchmarks/answer_kb/questions.json`` through the app's own
answering path (``AnswerService`` over the app's Searcher, Store and embedder, with the settings
``almanac ask`` uses), loaded once, one model after the other. The knowledge base (the fictional
Larkspur TR-7 payment terminal, in PDF, DOCX, Markdown, HTML, text and CSV) is never used for
training, so the figures measure what a model does on documents it has not seen.

    .venv/bin/python benchmarks/answer_quality.py                  # base vs the default model
    .venv/bin/python benchmarks/answer_quality.py --model base=SmolLM2.gguf \\
        --model tuned=SmolLM2.gguf+adapter.gguf --threads 2 --busy --json out.json

Per model: answer correct (states the expected fact), correct and cited to the right file (and
page, for the PDF), groundedness (share of answer sentences supported by the passages they cite,
the app's own check), refusals on unanswerable questions, false refusals on answerable ones, and
time to the first token and to the whole answer (p50 over the answers the model wrote, model
loaded and warmed up). ``--busy`` keeps one core busy with another process for the whole run, as
on a user's laptop. Per-question details go to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KB_SET = HERE / "answer_kb"
QUESTIONS = KB_SET / "questions.json"
OUT = HERE / "out"  # git-ignored
KB_CACHE = OUT / "answer_kb" / "kb"
DEFAULT_JSON = OUT / "answer_quality.json"
WARM_UP_QUESTION = "What does the hardware guide cover?"


# -- the question set ------------------------------------------------------------------------------


def _flat(text: str) -> str:
    return " ".join(text.split()).casefold()


def _pattern(expected: str) -> re.Pattern[str]:
    # A number must match whole: "2 hours" is not stated by "72 hours", nor "up to 2" by "up to 25".
    # Words may run on ("clean" is stated by "cleaning").
    body = re.escape(_flat(expected))
    if expected[:1].isdigit():
        body = r"(?<![0-9])" + body
    if expected[-1:].isdigit():
        body += r"(?![0-9])"
    return re.compile(body)


def states_fact(text: str, alternatives: Sequence[str]) -> bool:
    """Whether ``text`` contains any of the alternatives (case and spacing ignored)."""
    flat = _flat(text)
    return any(_pattern(a).search(flat) for a in alternatives)


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    kind: str  # "answerable" or "unanswerable"
    text: str
    must_contain: tuple[str, ...]
    file: str | None = None  # relative to the documents folder
    page: int | None = None  # 1-based, PDF only
    category: str = ""  # unanswerable: near-topic, false-premise, off-topic


def load_questions(path: Path = QUESTIONS) -> tuple[Path, list[Question]]:
    """The documents folder and the questions, in file order."""
    data = json.loads(path.read_text(encoding="utf-8"))
    questions = [
        Question(
            id=str(q["id"]),
            kind=str(q["kind"]),
            text=str(q["question"]),
            must_contain=tuple(q.get("must_contain", ())),
            file=q.get("file"),
            page=q.get("page"),
            category=str(q.get("category", "")),
        )
        for q in data["questions"]
    ]
    return path.parent / data["documents"], questions


def limit_questions(questions: Sequence[Question], limit: int | None) -> list[Question]:
    """At most ``limit`` questions of each kind, in file order."""
    if limit is None:
        return list(questions)
    seen: dict[str, int] = {}
    kept: list[Question] = []
    for q in questions:
        seen[q.kind] = seen.get(q.kind, 0) + 1
        if seen[q.kind] <= limit:
            kept.append(q)
    return kept


# -- models ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    path: Path
    adapter: Path | None = None
    chat_format: str | None = None  # for a base without a chat template (Gemma 3 270M)


MODEL_SYNTAX = "NAME=PATH.gguf[+ADAPTER.gguf][@CHAT_FORMAT]"


def parse_model(value: str) -> ModelSpec:
    """``NAME=PATH.gguf``, ``NAME=PATH.gguf+ADAPTER.gguf``, either with ``@gemma`` (a built-in
    chat template, as a default model's manifest names one)."""
    from almanac.core.llm.chat_templates import BUILTIN

    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"expected {MODEL_SYNTAX}, got {value!r}")
    files, at, chat_format = rest.rpartition("@")
    if not at or not re.fullmatch(r"[\w-]+", chat_format):  # no suffix; "@" in a file name
        files, chat_format = rest, ""
    if chat_format and chat_format not in BUILTIN:
        raise argparse.ArgumentTypeError(
            f"{name}: unknown chat format {chat_format!r} (known: {', '.join(sorted(BUILTIN))})"
        )
    model, plus, adapter = files.partition("+")
    spec = ModelSpec(name, Path(model), Path(adapter) if plus else None, chat_format or None)
    for file in (spec.path, spec.adapter):
        if file is not None and not file.is_file():
            raise argparse.ArgumentTypeError(f"{name}: no such file: {file}")
    return spec


def default_models() -> list[ModelSpec]:
    """The base model and the app's default (fine-tuned) model as the app loads them: the runtime
    file (the base re-quantized, see core/llm/runtime_file.py) alone, and with the adapter, so
    the two differ by the fine-tuning only."""
    from almanac.app.environment import model_cache_dir
    from almanac.core.llm.default_model import DefaultModelError, resolve_default_model

    try:
        default = resolve_default_model(cache_dir=model_cache_dir())
        runtime = default.prepare(model_cache_dir())
    except DefaultModelError as exc:
        sys.exit(f"the default model cannot be used ({exc}): pass --model")
    return [
        ModelSpec("base", runtime.path, chat_format=default.chat_format),
        ModelSpec("default", runtime.path, default.adapter, chat_format=default.chat_format),
    ]


# -- a competing process --------------------------------------------------------------------------


@contextmanager
def busy_core(enabled: bool) -> Iterator[int | None]:
    """One other process spinning on a core for the duration, as on a user's busy machine."""
    if not enabled:
        yield None
        return
    from _common import spin_one_core

    proc = spin_one_core()  # it stops by itself if the benchmark is killed
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


# -- scoring --------------------------------------------------------------------------------------


def _p50(values: Sequence[float]) -> float | None:
    from almanac.core.evaluation.eval import percentile

    return percentile(list(values), 50) if values else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class ModelResult:
    spec: ModelSpec
    load_seconds: float
    summary: dict[str, Any]
    per_question: list[dict[str, Any]]


def _relative(path: str, docs: Path) -> str:
    try:
        return Path(path).resolve().relative_to(docs.resolve()).as_posix()
    except ValueError:
        return path


def open_engine(spec: ModelSpec, ask: Mapping[str, Any], threads: int | None) -> Any:
    """The model (and its adapter) loaded as ``almanac ask`` loads it (``_ask_settings``)."""
    from almanac.core.llm.llama_engine import LlamaCppEngine

    return LlamaCppEngine(
        spec.path,
        n_ctx=ask["ctx"],
        gpu_layers=ask["gpu_layers"],
        threads=threads,
        lora_path=spec.adapter,
        chat_format=spec.chat_format,
    )


def run_model(
    spec: ModelSpec,
    questions: Sequence[Question],
    docs: Path,
    services: Any,
    ask: Mapping[str, Any],
    threads: int | None,
    progress: Callable[[str], None],
) -> ModelResult:
    from almanac.core.answering.answer import AnswerConfig, AnswerService
    from almanac.core.answering.citations import strip_markers
    from almanac.core.evaluation.eval_answers import AnswerReport, score_answer
    from almanac.core.records import AnswerMode

    started = time.perf_counter()
    engine = open_engine(spec, ask, threads)
    load_seconds = time.perf_counter() - started
    try:
        service = AnswerService(
            services.searcher,
            services.embedder,
            engine,
            config=AnswerConfig(
                sources=ask["k"], max_tokens=ask["max_tokens"], temperature=ask["temperature"]
            ),
        )
        # Page the weights in and fill the cached system-prompt prefix once, as an open app has.
        service.answer(WARM_UP_QUESTION)
        doc_of_path = {
            str(p.resolve()): p.relative_to(docs).as_posix() for p in docs.rglob("*") if p.is_file()
        }
        outcomes = []
        rows: list[dict[str, Any]] = []
        for i, q in enumerate(questions, 1):
            pieces: list[str] = []
            answer = service.answer(q.text, on_token=pieces.append)
            outcome = score_answer(
                answer,
                "".join(pieces),
                service.embedder,
                id=q.id,
                kind="positive" if q.kind == "answerable" else "negative",
                relevant_docs=frozenset({q.file}) if q.file else frozenset(),
                doc_of_path=doc_of_path,
            )
            outcomes.append(outcome)
            written = answer.mode is AnswerMode.MODEL and not outcome.refused
            correct = (
                q.kind == "answerable"
                and written
                and states_fact(strip_markers(answer.text), q.must_contain)
            )
            cited_right = correct and any(
                _relative(c.path, docs) == q.file and (q.page is None or c.page == q.page)
                for c in answer.citations
            )
            rows.append(
                {
                    **outcome.to_json(),
                    "category": q.category or None,
                    "expected": list(q.must_contain) if q.kind == "answerable" else None,
                    "expected_file": q.file,
                    "expected_page": q.page,
                    "correct": correct,
                    "correct_and_cited": cited_right,
                    # The answer policy's doing, not the model's: what it wrote, withheld because
                    # no sentence was supported by what it cites (shown on request in the app).
                    "withheld": answer.withheld,
                    "withheld_correct": q.kind == "answerable"
                    and answer.withheld
                    and states_fact(strip_markers(answer.unsupported_text), q.must_contain),
                    "withheld_text": answer.unsupported_text or None,
                    "tokens": answer.tokens_generated,
                    "citations": [
                        {"n": c.number, "file": _relative(c.path, docs), "page": c.page}
                        for c in answer.citations
                    ],
                }
            )
            mark = "refused" if outcome.refused else ("ok" if correct else "-")
            progress(f"{spec.name} {i}/{len(questions)} {q.id} {mark} {outcome.seconds:.1f}s")
    finally:
        engine.close()
    report = AnswerReport.from_outcomes(spec.name, outcomes)
    return ModelResult(spec, load_seconds, summarize(rows, report.metrics), rows)


def summarize(
    rows: Sequence[dict[str, Any]], metrics: Mapping[str, float | None]
) -> dict[str, Any]:
    answerable = [r for r in rows if r["kind"] == "positive"]
    unanswerable = [r for r in rows if r["kind"] == "negative"]
    # Latency of the answers the model actually wrote: a retrieval refusal costs milliseconds and
    # would hide the model's speed in the median.
    generated = [r for r in rows if r["tokens"] > 0]
    by_category: dict[str, float | None] = {}
    for category in sorted({r["category"] for r in unanswerable}):
        group = [r for r in unanswerable if r["category"] == category]
        by_category[category] = _ratio(sum(r["refused"] for r in group), len(group))
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "correct": _ratio(sum(r["correct"] for r in answerable), len(answerable)),
        "correct_and_cited": _ratio(
            sum(r["correct_and_cited"] for r in answerable), len(answerable)
        ),
        "groundedness": metrics.get("groundedness"),
        "refusal_rate_unanswerable": metrics.get("refusal_rate_negatives"),
        "refused_by_retrieval_unanswerable": metrics.get("refused_by_retrieval_negatives"),
        "refusal_rate_by_category": by_category,
        "false_refusal_rate": metrics.get("false_refusal_rate"),
        # Of the answerable questions: answers the grounding check withheld, and those of them
        # that stated the expected fact all the same.
        "withheld_answerable": _ratio(sum(r["withheld"] for r in answerable), len(answerable)),
        "withheld_correct_answerable": _ratio(
            sum(r["withheld_correct"] for r in answerable), len(answerable)
        ),
        "withheld_unanswerable": _ratio(
            sum(r["withheld"] for r in unanswerable), len(unanswerable)
        ),
        "citation_validity": metrics.get("citation_validity"),
        "cited_answer_rate": metrics.get("cited_answer_rate"),
        "first_token_p50_s": _p50(
            [r["first_token_seconds"] for r in generated if r["first_token_seconds"] is not None]
        ),
        "answer_p50_s": _p50([r["seconds"] for r in generated]),
        "answer_p50_all_s": _p50([r["seconds"] for r in rows]),
        "model_answers": len(generated),
        "tokens_p50": _p50([float(r["tokens"]) for r in generated]),
    }


# -- output ---------------------------------------------------------------------------------------


def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(results: Sequence[ModelResult]) -> str:
    header = (
        "| model | correct | correct + cited | grounded | refused (unanswerable) "
        "| false refusals | first token p50 (s) | answer p50 (s) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.spec.name} | {_cell(s['correct'])} | {_cell(s['correct_and_cited'])} "
            f"| {_cell(s['groundedness'])} | {_cell(s['refusal_rate_unanswerable'])} "
            f"| {_cell(s['false_refusal_rate'])} | {_cell(s['first_token_p50_s'])} "
            f"| {_cell(s['answer_p50_s'])} |"
        )
    categories = sorted({c for r in results for c in r.summary["refusal_rate_by_category"]})
    lines += [
        "",
        "| model | " + " | ".join(f"refused: {c}" for c in categories) + " | refused by retrieval "
        "| withheld (answerable / of them correct / unanswerable) | cited answers "
        "| model load (s) |",
        "|---|" + "---:|" * (len(categories) + 4),
    ]
    for r in results:
        s = r.summary
        by = s["refusal_rate_by_category"]
        lines.append(
            f"| {r.spec.name} | "
            + " | ".join(_cell(by.get(c)) for c in categories)
            + f" | {_cell(s['refused_by_retrieval_unanswerable'])} "
            f"| {_cell(s['withheld_answerable'])} / {_cell(s['withheld_correct_answerable'])} "
            f"/ {_cell(s['withheld_unanswerable'])} "
            f"| {_cell(s['cited_answer_rate'])} | {r.load_seconds:.1f} |"
        )
    return "\n".join(lines)


def _ask_settings() -> dict[str, Any]:
    """The settings ``almanac ask`` answers with by default (the defaults of Settings, which its
    unset options take), read from the app so they never drift."""
    from almanac.app.settings import Settings

    s = Settings()
    return {
        "k": s.sources,
        "max_tokens": s.max_tokens,
        "temperature": s.temperature,
        "ctx": s.context_size,
        "gpu_layers": s.gpu_layers,
    }


def index_kb(docs: Path, kb: Path) -> Any:
    """The documents indexed by the app's own ingestion, kept between runs (unchanged files cost
    one hash each)."""
    from almanac.app.services import build_services

    services = build_services(kb)
    report = services.ingestor.ingest([docs])
    if report.failed:
        failures = "; ".join(f"{f.path}: {f.message}" for f in report.failed)
        sys.exit(f"could not index the benchmark documents: {failures}")
    print(
        f"knowledge base {kb}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.chunks_written} chunks written",
        file=sys.stderr,
    )
    return services


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--model",
        action="append",
        type=parse_model,
        metavar=MODEL_SYNTAX,
        help="a model to compare (repeatable); default: the base SmolLM2-135M-Instruct Q4_1 and "
        "the app's default model",
    )
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the app's)")
    parser.add_argument(
        "--busy", action="store_true", help="keep one core busy with another process throughout"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="per-question details")
    parser.add_argument("--limit", type=int, help="at most N questions of each kind")
    parser.add_argument("--kb", type=Path, default=KB_CACHE, help="cached knowledge base folder")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-question progress")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")

    models: list[ModelSpec] = args.model or default_models()
    if len({m.name for m in models}) != len(models):
        parser.error("model names must differ")
    docs, questions = load_questions()
    questions = limit_questions(questions, args.limit)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    services = index_kb(docs, args.kb)
    ask = _ask_settings()
    results: list[ModelResult] = []
    load_before = os.getloadavg()
    with busy_core(args.busy) as busy_pid:
        for spec in models:
            results.append(run_model(spec, questions, docs, services, ask, args.threads, progress))

    where = f"{os.cpu_count()} CPUs, threads {args.threads or 'app default'}"
    where += ", one core kept busy by another process" if busy_pid else ""
    # Other jobs on the machine slow every timing: say how loaded it was.
    where += f", load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    print(f"\nAnswer quality on the held-out Larkspur TR-7 set ({where}):\n")
    print(markdown_table(results))
    payload = {
        "questions_file": str(QUESTIONS.relative_to(HERE.parent)),
        "answerable": sum(q.kind == "answerable" for q in questions),
        "unanswerable": sum(q.kind == "unanswerable" for q in questions),
        "ask_settings": ask,
        "threads": args.threads,
        "busy": bool(busy_pid),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "models": [
            {
                "name": r.spec.name,
                "model": str(r.spec.path),
                "adapter": str(r.spec.adapter) if r.spec.adapter else None,
                "load_seconds": round(r.load_seconds, 3),
                **r.summary,
                "per_question": r.per_question,
            }
            for r in results
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nper-question details: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
