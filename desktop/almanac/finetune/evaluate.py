"""Held-out evaluation, before vs after: the base and the fine-tuned GGUF through LlamaCppEngine.

Both models answer every held-out prompt (greedy, the app's prompt exactly as in the data) and
are scored the way the app treats answers:

- citation format: an answer that should cite has at least one ``[n]`` marker and every marker
  names a source in the prompt;
- right source: it cites the source the reference answer cites;
- correct refusals: where the reference refuses, the output is the app's refusal and cites
  nothing (the app's own refusal test); false refusals: it refuses where it should answer;
- answer similarity to the reference: token F1 (SQuAD-style, markers stripped) and cosine
  similarity of the bundled MiniLM sentence embeddings;
- groundedness: the app's check (``almanac.core.answering.grounding``): every sentence cites a
source
  that supports it, or the answer is a refusal.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from almanac.core.answering.answer import _REFUSAL, NOT_FOUND_TEXT
from almanac.core.answering.citations import drop_invalid_markers, marker_numbers, strip_markers
from almanac.core.answering.grounding import unsupported_sentences
from almanac.core.answering.prompting import SOURCES_HEADER
from almanac.core.embedding.embedding import Embedder
from almanac.core.llm.base import ChatMessage, GenerationConfig
from almanac.finetune.data import Conversation

_SOURCE_BLOCK = re.compile(r"^\[(\d{1,3})\] [^\n]*\n(.*)$", re.S)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True, slots=True)
class ExampleResult:
    line: int
    question: str
    reference: str
    output: str
    should_refuse: bool
    sources: int
    cited: tuple[int, ...]  # valid markers in the output
    invalid_markers: tuple[int, ...]
    refused: bool
    grounded: bool
    token_f1: float | None  # None for refusal references
    cosine: float | None


@dataclass(frozen=True, slots=True)
class Scores:
    model: str
    examples: int
    answers: int  # held-out references that answer with citations
    refusals: int  # held-out references that refuse
    citation_format: float | None
    right_source: float | None
    correct_refusals: float | None
    false_refusals: float | None
    grounded: float | None
    token_f1: float | None
    cosine: float | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def sources_in(system: str) -> dict[int, str]:
    """The numbered passages of an app-format system prompt (number -> text)."""
    at = system.find(SOURCES_HEADER + "\n\n")
    if at < 0:
        return {}
    out: dict[int, str] = {}
    for block in system[at + len(SOURCES_HEADER) + 2 :].split("\n\n"):
        match = _SOURCE_BLOCK.match(block)
        if match:
            out[int(match.group(1))] = match.group(2)
    return out


def token_f1(prediction: str, reference: str) -> float:
    def tokens(text: str) -> list[str]:
        text = strip_markers(text).lower()
        text = "".join(ch for ch in text if ch not in string.punctuation)
        return _ARTICLES.sub(" ", text).split()

    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def score_output(
    conversation: Conversation, output: str, embedder: Embedder, similarity: float = 0.5
) -> ExampleResult:
    messages = conversation.messages
    system = messages[0].content if messages[0].role == "system" else ""
    passages = sources_in(system)
    reference = conversation.answer
    should_refuse = conversation.refusal
    text, invalid = drop_invalid_markers(output.strip(), set(passages))
    cited = tuple(n for n in marker_numbers(text) if n in passages)
    refused = bool(_REFUSAL.search(text)) and not cited
    if refused:
        unsupported: list[str] = []
    else:
        unsupported = unsupported_sentences(
            text,
            {n: passages[n] for n in cited},
            embedder,
            similarity=similarity,
            exempt=(NOT_FOUND_TEXT,),
        )
    f1 = cosine = None
    if not should_refuse:
        f1 = token_f1(text, reference)
        plain = strip_markers(text)
        if plain:
            vectors = embedder.embed([plain, strip_markers(reference)])
            cosine = float(np.dot(vectors[0], vectors[1]))
        else:
            cosine = 0.0
    question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return ExampleResult(
        line=conversation.line,
        question=question,
        reference=reference,
        output=output.strip(),
        should_refuse=should_refuse,
        sources=len(passages),
        cited=cited,
        invalid_markers=invalid,
        refused=refused,
        grounded=not unsupported and (refused or bool(cited)),
        token_f1=f1,
        cosine=cosine,
    )


def summarize(model: str, results: Sequence[ExampleResult], seconds: float) -> Scores:
    answers = [r for r in results if not r.should_refuse]
    refusals = [r for r in results if r.should_refuse]

    def rate(items: Sequence[ExampleResult], test: Callable[[ExampleResult], bool]) -> float | None:
        return sum(1 for r in items if test(r)) / len(items) if items else None

    def mean(values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    return Scores(
        model=model,
        examples=len(results),
        answers=len(answers),
        refusals=len(refusals),
        citation_format=rate(answers, lambda r: bool(r.cited) and not r.invalid_markers),
        right_source=rate(answers, lambda r: bool(set(r.cited) & set(marker_numbers(r.reference)))),
        correct_refusals=rate(refusals, lambda r: r.refused),
        false_refusals=rate(answers, lambda r: r.refused),
        grounded=rate(results, lambda r: r.grounded),
        token_f1=mean([r.token_f1 for r in answers]),
        cosine=mean([r.cosine for r in answers]),
        seconds=seconds,
    )


def evaluate_gguf(
    gguf: Path,
    heldout: Sequence[Conversation],
    embedder: Embedder,
    *,
    n_ctx: int,
    max_tokens: int,
    label: str,
    threads: int | None = None,
) -> tuple[Scores, list[ExampleResult]]:
    """Answer every held-out prompt with ``gguf`` through the app's engine, and score it."""
    from almanac.core.llm.llama_engine import LlamaCppEngine

    engine = LlamaCppEngine(gguf, n_ctx=n_ctx, seed=0, threads=threads)
    started = time.monotonic()
    results: list[ExampleResult] = []
    config = GenerationConfig(max_tokens=max_tokens, temperature=0.0, seed=0)
    try:
        for conversation in heldout:
            prompt: list[ChatMessage] = list(conversation.messages[:-1])
            output = "".join(engine.stream_chat(prompt, config))
            results.append(score_output(conversation, output, embedder))
    finally:
        engine.close()
    return summarize(label, results, time.monotonic() - started), results


# -- the report ----------------------------------------------------------------------------------

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("citation_format", "Citation format (answers with valid [n] markers)", "answers"),
    ("right_source", "Cites the right source", "answers"),
    ("correct_refusals", "Correct refusals", "refusals"),
    ("false_refusals", "False refusals (lower is better)", "answers"),
    ("grounded", "Grounded (app's check)", "examples"),
    ("token_f1", "Answer similarity: token F1", "answers"),
    ("cosine", "Answer similarity: MiniLM cosine", "answers"),
)


def write_report(
    out_dir: Path,
    before: Scores,
    after: Scores,
    before_results: Sequence[ExampleResult],
    after_results: Sequence[ExampleResult],
    meta: dict[str, Any],
    samples: int = 6,
) -> tuple[Path, Path]:
    """report.json (every number and output) and report.md (for people)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        **meta,
        "before": before.to_json(),
        "after": after.to_json(),
        "examples": [
            {
                "line": b.line,
                "question": b.question,
                "reference": b.reference,
                "before": b.output,
                "after": a.output,
                "before_grounded": b.grounded,
                "after_grounded": a.grounded,
            }
            for b, a in zip(before_results, after_results, strict=True)
        ],
    }
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [
        f"# Fine-tuning evaluation: {meta.get('name', after.model)}",
        "",
        f"Held-out set: {before.examples} conversations ({before.answers} answers, "
        f"{before.refusals} refusals), never trained on. Both models are GGUF files run "
        "through the app's llama.cpp engine with greedy decoding, on the exact prompts of the "
        "data (app system prompt, numbered sources).",
        "",
        f"| Metric | Base ({before.model}) | Fine-tuned ({after.model}) | Over |",
        "|---|---|---|---|",
    ]
    for key, title, over in _ROWS:
        lines.append(
            f"| {title} | {_fmt(getattr(before, key))} | {_fmt(getattr(after, key))} | "
            f"{getattr(before, over)} {over} |"
        )
    lines += [
        f"| Seconds to answer the set | {before.seconds:.1f} | {after.seconds:.1f} | |",
        "",
        "Answer similarity is token F1 (SQuAD-style: lower case, no punctuation, articles or "
        "[n] markers) and the cosine similarity of all-MiniLM-L6-v2 embeddings, both against the "
        "reference answer. Groundedness is the app's own check (every sentence cites a source "
        "that supports it, or the answer is a refusal).",
        "",
        "## Examples",
        "",
    ]
    for b, a in list(zip(before_results, after_results, strict=True))[:samples]:
        lines += [
            f"**Q (line {b.line}):** {b.question}",
            "",
            f"- reference: {b.reference}",
            f"- base: {b.output or '(empty)'}",
            f"- fine-tuned: {a.output or '(empty)'}",
            "",
        ]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return md_path, json_path


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}"
