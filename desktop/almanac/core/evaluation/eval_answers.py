"""Answer evaluation: run the answer service on labelled questions and on questions the documents
cannot answer, and measure how honest the answers are.

- groundedness: share of answer sentences that make a claim and are supported by a passage they
  cite (the same per-sentence check the app runs on every answer, ``core.grounding``);
- citation validity: share of the model's ``[n]`` markers that point at a source it was shown;
  cited-answer rate: share of written answers with at least one valid citation;
- refusal rate on negatives (questions from another dataset, so the documents can't answer them)
  and on positives (false refusals), split by who refused: the retrieval floor or the model;
- latency of whole answers and of the first token.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from almanac.core.answering.answer import NOT_FOUND_TEXT, AnswerService
from almanac.core.answering.citations import MARKER_RE
from almanac.core.answering.grounding import unsupported_sentences
from almanac.core.embedding.embedding import Embedder
from almanac.core.evaluation.eval import EvalQuery, percentile
from almanac.core.records import Answer, AnswerMode

Kind = Literal["positive", "negative"]
ProgressFn = Callable[[int, int], None]


# -- negatives ------------------------------------------------------------------------------------


def _questions_from_json(data: Any, path: Path) -> list[str]:
    if isinstance(data, dict) and isinstance(data.get("data"), list):  # SQuAD
        try:
            return [
                str(qa["question"])
                for article in data["data"]
                for para in article["paragraphs"]
                for qa in para.get("qas", [])
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}: not a SQuAD JSON file (missing {exc})") from exc
    if isinstance(data, list):
        out: list[str] = []
        for i, item in enumerate(data):
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("question", item.get("text")), str):
                out.append(str(item.get("question", item.get("text"))))
            else:
                raise ValueError(f"{path}: item {i}: expected a string or a 'question' field")
        return out
    raise ValueError(f"{path}: expected a list of questions or a SQuAD file")


def read_questions(source: Path) -> list[str]:
    """Questions from a BEIR folder (its queries.jsonl), a SQuAD JSON file, a JSON list (strings
    or objects with "question"), JSON lines ("text" or "question"), a CSV ("Question" column) or
    a text file (one per line). Blank and repeated questions are dropped."""
    source = Path(source)
    if source.is_dir():
        source = source / "queries.jsonl"
    if not source.is_file():
        raise FileNotFoundError(f"negative questions not found: {source}")
    suffix = source.suffix.lower()
    try:
        if suffix == ".json":
            raw = _questions_from_json(json.loads(source.read_text(encoding="utf-8")), source)
        elif suffix == ".jsonl":
            raw = []
            for lineno, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                item = json.loads(line)
                text = item.get("text", item.get("question")) if isinstance(item, dict) else None
                if not isinstance(text, str):
                    raise ValueError(f"{source}: line {lineno}: no 'text' or 'question' field")
                raw.append(text)
        elif suffix == ".csv":
            with open(source, encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                column = next(
                    (h for h in reader.fieldnames or [] if h.strip().lower() == "question"), None
                )
                if column is None:
                    raise ValueError(f"{source}: no 'Question' column")
                raw = [row.get(column) or "" for row in reader]
        else:
            raw = source.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{source}: unreadable ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from exc
    seen: dict[str, None] = {}
    for text in raw:
        text = text.strip()
        if text:
            seen.setdefault(text, None)
    return list(seen)


def default_negatives(beir: Path | None = None, squad: Path | None = None) -> Path | None:
    """The other shared dataset beside the one evaluated: SQuAD questions for a BEIR folder
    (``<parent>/squad/*.json``), the BEIR SciFact queries for a SQuAD file
    (``<grandparent>/scifact``). None when it isn't there."""
    if beir is not None:
        squad_dir = Path(beir).resolve().parent / "squad"
        candidates = sorted(squad_dir.glob("*.json")) if squad_dir.is_dir() else []
        return candidates[0] if candidates else None
    if squad is not None:
        scifact = Path(squad).resolve().parent.parent / "scifact"
        return scifact if (scifact / "queries.jsonl").is_file() else None
    return None


def sample(items: Sequence[Any], n: int, seed: int = 0) -> list[Any]:
    """``n`` items picked at random (seeded, so runs compare), kept in their original order."""
    if n >= len(items):
        return list(items)
    picked = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in picked]


# -- scoring one answer ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    id: str
    question: str
    kind: Kind
    mode: str
    refused: bool
    refused_by: str | None  # "retrieval" (nothing above the floor) or "model"
    sources: int  # sources the model was shown, numbered [1]..[sources]
    claims: int  # sentences that make a claim
    supported: int  # claims supported by a passage they cite
    markers: int  # [n] numbers the model wrote, counting repeats
    valid_markers: int  # those that point at a source the model was shown
    cited: bool  # at least one valid citation survives in the answer
    cites_relevant: bool | None  # a citation points at a labelled document (positives only)
    seconds: float
    first_token_seconds: float | None
    text: str
    unsupported: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "kind": self.kind,
            "mode": self.mode,
            "refused": self.refused,
            "refused_by": self.refused_by,
            "sources": self.sources,
            "claims": self.claims,
            "supported": self.supported,
            "markers": self.markers,
            "valid_markers": self.valid_markers,
            "cited": self.cited,
            "cites_relevant": self.cites_relevant,
            "seconds": round(self.seconds, 3),
            "first_token_seconds": (
                None if self.first_token_seconds is None else round(self.first_token_seconds, 3)
            ),
            "answer": self.text,
            "unsupported_sentences": list(self.unsupported),
        }


def count_markers(raw_text: str, shown: set[int]) -> tuple[int, int]:
    """(all [n] numbers, those in ``shown``), counting every occurrence."""
    numbers = [int(p) for m in MARKER_RE.finditer(raw_text) for p in m.group(1).split(",")]
    return len(numbers), sum(1 for n in numbers if n in shown)


def claim_sentences(text: str, embedder: Embedder) -> list[str]:
    """The sentences the grounding check judges. With no passages every claim comes back as
    unsupported, before anything is embedded: the grounding module's own notion of a claim."""
    return unsupported_sentences(text, {}, embedder, exempt=(NOT_FOUND_TEXT,))


def score_answer(
    answer: Answer,
    raw_text: str,
    embedder: Embedder,
    *,
    id: str,
    kind: Kind,
    relevant_docs: frozenset[str] = frozenset(),
    doc_of_path: Mapping[str, str] | None = None,
) -> AnswerOutcome:
    """Score one answer. ``raw_text`` is what the model streamed, before invalid markers were
    removed from ``answer.text``."""
    refused = answer.mode is AnswerMode.NOT_FOUND
    refused_by = None
    if refused:
        refused_by = "retrieval" if answer.tokens_generated == 0 else "model"
    shown = {c.number for c in answer.citations} | {c.number for c in answer.also_retrieved}
    # Every answer the model wrote counts, withheld ones too: validity is about its markers.
    markers, valid = count_markers(raw_text, shown) if answer.tokens_generated else (0, 0)
    claims = 0 if refused else len(claim_sentences(answer.text, embedder))
    supported = max(claims - len(answer.unsupported_sentences), 0)
    cites_relevant: bool | None = None
    if kind == "positive" and doc_of_path is not None and answer.citations:
        cites_relevant = any(doc_of_path.get(c.path) in relevant_docs for c in answer.citations)
    return AnswerOutcome(
        id=id,
        question=answer.question,
        kind=kind,
        mode=answer.mode.value,
        refused=refused,
        refused_by=refused_by,
        sources=len(shown),
        claims=claims,
        supported=supported,
        markers=markers,
        valid_markers=valid,
        cited=bool(answer.citations) and answer.mode is AnswerMode.MODEL,
        cites_relevant=cites_relevant,
        seconds=answer.seconds_total,
        first_token_seconds=answer.seconds_to_first_token,
        text=answer.text,
        unsupported=answer.unsupported_sentences,
    )


# -- the report -----------------------------------------------------------------------------------


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class AnswerReport:
    model: str
    positives: int
    negatives: int
    metrics: dict[str, float | None]  # None: nothing to measure (no claims, no markers, ...)
    latency_p50_s: float
    latency_p95_s: float
    first_token_p50_s: float | None
    outcomes: tuple[AnswerOutcome, ...] = field(default=())
    negatives_source: str = ""

    @classmethod
    def from_outcomes(
        cls, model: str, outcomes: Sequence[AnswerOutcome], negatives_source: str = ""
    ) -> AnswerReport:
        pos = [o for o in outcomes if o.kind == "positive"]
        neg = [o for o in outcomes if o.kind == "negative"]
        written = [o for o in outcomes if o.mode == AnswerMode.MODEL.value]
        cited_pos = [o for o in pos if o.cites_relevant is not None]
        firsts = [o.first_token_seconds for o in outcomes if o.first_token_seconds is not None]
        metrics: dict[str, float | None] = {
            "groundedness": _ratio(
                sum(o.supported for o in written), sum(o.claims for o in written)
            ),
            "citation_validity": _ratio(
                sum(o.valid_markers for o in outcomes), sum(o.markers for o in outcomes)
            ),
            "cited_answer_rate": _ratio(sum(o.cited for o in written), len(written)),
            "cites_relevant_rate": _ratio(
                sum(bool(o.cites_relevant) for o in cited_pos), len(cited_pos)
            ),
            "refusal_rate_negatives": _ratio(sum(o.refused for o in neg), len(neg)),
            "refused_by_retrieval_negatives": _ratio(
                sum(o.refused_by == "retrieval" for o in neg), len(neg)
            ),
            "false_refusal_rate": _ratio(sum(o.refused for o in pos), len(pos)),
        }
        seconds = [o.seconds for o in outcomes]
        return cls(
            model=model,
            positives=len(pos),
            negatives=len(neg),
            metrics=metrics,
            latency_p50_s=percentile(seconds, 50),
            latency_p95_s=percentile(seconds, 95),
            first_token_p50_s=percentile(firsts, 50) if firsts else None,
            outcomes=tuple(outcomes),
            negatives_source=negatives_source,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "positives": self.positives,
            "negatives": self.negatives,
            "negatives_source": self.negatives_source,
            **{k: None if v is None else round(v, 4) for k, v in self.metrics.items()},
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p95_s": round(self.latency_p95_s, 3),
            "first_token_p50_s": (
                None if self.first_token_p50_s is None else round(self.first_token_p50_s, 3)
            ),
            "per_answer": [o.to_json() for o in self.outcomes],
        }

    def table_rows(self) -> list[tuple[str, str]]:
        rows = [(name, "n/a" if v is None else f"{v:.4f}") for name, v in self.metrics.items()]
        rows.append(("answer latency p50 (s)", f"{self.latency_p50_s:.2f}"))
        rows.append(("answer latency p95 (s)", f"{self.latency_p95_s:.2f}"))
        first = "n/a" if self.first_token_p50_s is None else f"{self.first_token_p50_s:.2f}"
        rows.append(("first token p50 (s)", first))
        return rows


def evaluate_answers(
    service: AnswerService,
    positives: Sequence[EvalQuery],
    negatives: Sequence[str],
    *,
    doc_of_path: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    negatives_source: str = "",
) -> AnswerReport:
    """Answer every question once, positives first, and score the answers."""
    if service.engine is None:
        raise ValueError("answer evaluation needs a language model")
    jobs: list[tuple[str, str, Kind, frozenset[str]]] = [
        (q.id, q.text, "positive", q.relevant) for q in positives
    ]
    jobs += [(f"neg{i + 1}", text, "negative", frozenset()) for i, text in enumerate(negatives)]
    outcomes: list[AnswerOutcome] = []
    for done, (qid, text, kind, relevant) in enumerate(jobs, 1):
        pieces: list[str] = []
        answer = service.answer(text, on_token=pieces.append)
        outcomes.append(
            score_answer(
                answer,
                "".join(pieces),
                service.embedder,
                id=qid,
                kind=kind,
                relevant_docs=relevant,
                doc_of_path=doc_of_path,
            )
        )
        if progress is not None:
            progress(done, len(jobs))
    return AnswerReport.from_outcomes(service.engine.info.model, outcomes, negatives_source)
