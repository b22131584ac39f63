"""``almanac eval``: retrieval (and answer) quality on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from almanac.cli.common import (
    _BACKEND_HELP,
    EMBEDDER_BACKENDS,
    EMBEDDER_HELP,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    _embedding_model,
    _print_rows,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=EMBEDDER_HELP)
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


def _cmd_eval(args: argparse.Namespace) -> int:
    from almanac.app.evaluation import AnswerRun, EvaluationRun, run_evaluation
    from almanac.app.services import default_model
    from almanac.core.evaluation import eval as ev
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
    answer_run: AnswerRun | None = None
    if answering:  # bad input fails here, before the long indexing
        negatives, negatives_source = _eval_negatives(args, {q.text for q in evalset.queries})
        answer_run = AnswerRun(
            model,
            server_url=args.server,
            server_model=args.server_model,
            n_ctx=args.ctx,
            gpu_layers=args.gpu_layers,
            threads=args.threads,
            sources=args.sources,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            count=args.answers,
            negatives=negatives,
            negatives_source=negatives_source,
            heldout_only=args.squad is not None,
        )
    show_progress = args.progress or sys.stderr.isatty()
    outcome = run_evaluation(
        EvaluationRun(
            evalset,
            args.kb,
            embedding_model=_embedding_model(args),
            embedder_backend=args.embedder,
            chunks=args.chunks,
            floor=args.floor,
            answers=answer_run,
        ),
        progress=lambda phase, unit: ProgressBar(
            sys.stderr, phase, enabled=show_progress, unit=unit
        ),
        note=lambda line: print(line, file=sys.stderr),
    )
    report, answers = outcome.retrieval, outcome.answers

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
