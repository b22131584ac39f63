"""Refusal calibration: how sure a model must be before its refusal may open an answer.

A small fine-tuned model puts its refusal's one opening token ("I couldn't find that ...") above
any single answer token even when most of its probability is on answering, so the app refuses
only when the model gives that token at least ``refusal_confidence`` probability
(``GenerationConfig.opening_confidence``). That floor is a property of the model, so it is chosen
here, per model, on data neither its training nor the answer-quality benchmark uses: conversations
built exactly as the training data is (``almanac.finetune.raft``: the app's prompt, 3-5 sources
from the app's own search, about a third with the answering passage taken out), from the SQuAD
articles held out of training (``squad_part == "heldout"``).

For each conversation the model reads the prompt once and the probability of the refusal's
first token is recorded (``LlamaCppEngine.opening_probability``); nothing is generated. The
report: how well that probability separates the two kinds (ROC AUC), and for each floor the share
of answerable conversations the model may answer and the share of unanswerable ones it still
refuses. The recommended floor is the one that lets the most answerable conversations through
while refusing at least ``--target-refusals`` of the unanswerable ones (the issue's 0.8).

    .venv/bin/python benchmarks/refusal_calibration.py \\
        --model default=BASE.gguf+ADAPTER.gguf --items 90 --json benchmarks/out/calibration.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import answer_quality  # noqa: E402  (benchmarks are scripts, not a package)

OUT = HERE / "out"
WORK = OUT / "calibration"
SQUAD = HERE.parent.parent / "shared" / "eval" / "squad" / "dev-v1.1.json"
FLOORS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a random unanswerable conversation scores above a random answerable one), ties half."""
    if not positives or not negatives:
        return None
    wins = 0.0
    for n in negatives:
        for p in positives:
            wins += 1.0 if n > p else 0.5 if n == p else 0.0
    return wins / (len(positives) * len(negatives))


def floor_table(
    answerable: Sequence[float], unanswerable: Sequence[float], floors: Sequence[float] = FLOORS
) -> list[dict[str, float]]:
    """Per floor: answered share of the answerable, refused share of the unanswerable (the
    refusal may open the answer when its probability is at least the floor)."""
    rows = []
    for floor in floors:
        answered = sum(p < floor for p in answerable) / len(answerable) if answerable else 0.0
        refused = sum(p >= floor for p in unanswerable) / len(unanswerable) if unanswerable else 0.0
        rows.append({"floor": floor, "answered": answered, "refused": refused})
    return rows


def recommend(table: Sequence[dict[str, float]], target_refusals: float) -> float | None:
    """The floor that answers the most while refusing at least ``target_refusals``."""
    allowed = [r for r in table if r["refused"] >= target_refusals]
    if not allowed:
        return None
    best = max(allowed, key=lambda r: (r["answered"], -r["floor"]))
    return best["floor"]


def conversations(items: int, seed: int) -> list[Any]:
    from almanac.finetune.raft import build

    if not SQUAD.is_file():
        sys.exit(f"{SQUAD} not found")
    WORK.mkdir(parents=True, exist_ok=True)
    built, stats = build(
        squad=SQUAD,
        support=[],
        work=WORK,
        seed=seed,
        squad_limit=items,
        squad_split="heldout",
    )
    print(f"dev conversations (held-out SQuAD articles): {stats.to_json()}", file=sys.stderr)
    return built


def measure(spec: Any, dev: Sequence[Any], threads: int | None) -> dict[str, Any]:
    from almanac.core.answering.answer import NOT_FOUND_TEXT

    engine = answer_quality.open_engine(spec, answer_quality._ask_settings(), threads)
    answerable: list[float] = []
    unanswerable: list[float] = []
    started = time.process_time()
    try:
        for i, conversation in enumerate(dev, 1):
            prompt, target = conversation.messages[:-1], conversation.messages[-1].content
            p = engine.opening_probability(prompt, NOT_FOUND_TEXT)
            (unanswerable if target == NOT_FOUND_TEXT else answerable).append(p)
            print(f"{spec.name} {i}/{len(dev)} {conversation.kind} p={p:.3f}", file=sys.stderr)
    finally:
        engine.close()
    return {
        "name": spec.name,
        "model": str(spec.path),
        "adapter": str(spec.adapter) if spec.adapter else None,
        "cpu_seconds": round(time.process_time() - started, 1),
        "answerable": answerable,
        "unanswerable": unanswerable,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        action="append",
        type=answer_quality.parse_model,
        metavar=answer_quality.MODEL_SYNTAX,
        help="a model to calibrate (repeatable); default: the app's default model",
    )
    parser.add_argument("--items", type=int, default=90, help="SQuAD items to build from")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--target-refusals", type=float, default=0.8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    models = args.model or answer_quality.default_models()[1:]
    dev = conversations(args.items, args.seed)
    report = []
    for spec in models:
        measured = measure(spec, dev, args.threads)
        table = floor_table(measured["answerable"], measured["unanswerable"])
        auc = roc_auc(measured["answerable"], measured["unanswerable"])
        floor = recommend(table, args.target_refusals)
        report.append({**measured, "auc": auc, "table": table, "recommended_floor": floor})
        print(
            f"\n{spec.name}: {len(measured['answerable'])} answerable, "
            f"{len(measured['unanswerable'])} unanswerable, ROC AUC "
            f"{auc if auc is None else round(auc, 3)}, {measured['cpu_seconds']} CPU-s"
        )
        print("| floor | answered (answerable) | refused (unanswerable) |\n|---:|---:|---:|")
        for row in table:
            print(f"| {row['floor']:.2f} | {row['answered']:.2f} | {row['refused']:.2f} |")
        print(f"recommended floor (refusals >= {args.target_refusals}): {floor}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"items": args.items, "models": report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
