"""Training conversations in exactly the prompt format the app uses at run time.

A hand-written item is a question, an answer whose ``[k]`` markers point at the k-th passage that
supports it, and those passages (found by a short anchor text in the knowledge base). The builder
adds distractor passages, shuffles the sources and renumbers the markers, so the model learns to
cite whichever number the right passage got, and builds the prompt with
``almanac.core.answering.prompting.build_messages``: same system prompt, same numbered sources. An
item
without an answer becomes a negative: sources that don't contain the answer, and the app's refusal
text as the target.

    python -m almanac.finetune.examples --kb resources/sample-kb \\
        --qa models/finetune/example/qa.json --out models/finetune/example/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.core.answering.answer import NOT_FOUND_TEXT
from almanac.core.answering.prompting import (
    Source,
    build_messages,
    default_system_prompt,
    source_label,
)
from almanac.core.documents import DocumentError, is_supported, read_document
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.llm.base import ChatMessage

REFUSAL = NOT_FOUND_TEXT
_AUTHOR_MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True, slots=True)
class Passage:
    """A source as the model sees it: ``label`` as in the app's prompt, whitespace-free text."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class QAItem:
    question: str
    answer: str | None  # None: the sources don't answer it; the target is the refusal
    sources: tuple[str, ...]  # anchors of the passages the answer cites, in [1], [2] order
    related: tuple[str, ...] = ()  # anchors of near-miss passages shown with a refusal


def build_conversation(
    question: str,
    answer: str | None,
    relevant: Sequence[Passage],
    distractors: Sequence[Passage],
    rng: random.Random,
    *,
    system_prompt: str | None = None,
) -> list[ChatMessage]:
    """The app's prompt for ``question`` with shuffled sources, then the assistant's answer.

    ``answer``'s markers ``[k]`` refer to ``relevant[k-1]`` and are renumbered to where that
    passage lands. ``answer=None`` (with no relevant passages) targets the refusal text.
    """
    if not question.strip():
        raise ValueError("empty question")
    if answer is None:
        if relevant:
            raise ValueError(f"{question!r}: a refusal cannot have passages that answer it")
        if not distractors:
            raise ValueError(f"{question!r}: a refusal needs sources that don't answer it")
    else:
        cited = {int(n) for n in _AUTHOR_MARKER.findall(answer)}
        if not cited:
            raise ValueError(f"{question!r}: the answer cites no source ([1])")
        unknown = sorted(n for n in cited if not 1 <= n <= len(relevant))
        if unknown:
            raise ValueError(
                f"{question!r}: the answer cites [{unknown[0]}] but has {len(relevant)} passage(s)"
            )
    chosen: list[tuple[Passage, int | None]] = [
        *((p, k) for k, p in enumerate(relevant, 1)),
        *((p, None) for p in distractors),
    ]
    rng.shuffle(chosen)
    number_of = {k: i for i, (_, k) in enumerate(chosen, 1) if k is not None}
    sources = [Source(i, p.label, p.text) for i, (p, _) in enumerate(chosen, 1)]
    messages = build_messages(system_prompt or default_system_prompt(), sources, [], question)
    if answer is None:
        target = REFUSAL
    else:
        target = _AUTHOR_MARKER.sub(lambda m: f"[{number_of[int(m.group(1))]}]", answer.strip())
    return [*messages, ChatMessage("assistant", target)]


# -- a knowledge base as passages ------------------------------------------------------------


def kb_passages(
    root: Path, count_tokens: Callable[[str], int], chunking: ChunkingConfig | None = None
) -> list[Passage]:
    """Every chunk of the documents under ``root``, cut and labelled as ingestion and the
    answer service do (the label shows the file name, page and heading)."""
    chunker = Chunker(count_tokens, chunking or ChunkingConfig())
    out: list[Passage] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_supported(p)):
        try:
            document = read_document(path)
        except DocumentError:
            continue
        posix = path.absolute().as_posix()
        for chunk in chunker.chunk_document(posix, document):
            label = source_label(posix, chunk.page, chunk.heading)
            out.append(Passage(label, " ".join(chunk.text.split())))
    return out


def find_passage(passages: Sequence[Passage], anchor: str) -> Passage:
    """The first passage whose text contains ``anchor`` (whitespace-insensitive), else the first
    whose label does (a release's date may be only in its heading)."""
    needle = " ".join(anchor.split())
    for field in ("text", "label"):
        for passage in passages:
            if needle in getattr(passage, field):
                return passage
    raise ValueError(f"no passage contains {anchor!r}")


def build_dataset(
    items: Sequence[QAItem],
    passages: Sequence[Passage],
    *,
    seed: int = 0,
    variants: int = 2,
    max_sources: int = 4,
    system_prompt: str | None = None,
) -> list[list[ChatMessage]]:
    """Conversations for ``items``: ``variants`` per answerable item (different distractors and
    positions), one per refusal. Deterministic for a given seed."""
    rng = random.Random(seed)
    conversations: list[list[ChatMessage]] = []
    for item in items:
        relevant = [find_passage(passages, a) for a in item.sources]
        related = [find_passage(passages, a) for a in item.related]
        anchors = [" ".join(a.split()) for a in (*item.sources, *item.related)]
        # A distractor must not contain the answer's passage text (a chunk overlap could).
        pool = [
            p
            for p in passages
            if p not in relevant
            and p not in related
            and not any(a in p.text or a in p.label for a in anchors)
        ]
        rounds = 1 if item.answer is None else variants
        for variant in range(rounds):
            room = max(0, max_sources - len(relevant) - len(related))
            # Variant 0 of an answer has the fewest distractors: one source, cited as [1].
            count = 0 if variant == 0 and item.answer is not None else rng.randint(1, room or 1)
            distractors = [*related, *rng.sample(pool, min(count, room, len(pool)))]
            conversations.append(
                build_conversation(
                    item.question,
                    item.answer,
                    relevant,
                    distractors,
                    rng,
                    system_prompt=system_prompt,
                )
            )
    return conversations


def load_qa(path: Path) -> list[QAItem]:
    """Hand-written items: a JSON list of {"question", "answer" (null: refusal), "sources",
    "related"}; sources and related are lists of anchor texts."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of items")
    items: list[QAItem] = []
    for i, entry in enumerate(raw):
        where = f"{path}: item {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("question"), str):
            raise ValueError(f"{where}: expected an object with a question")
        answer = entry.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise ValueError(f"{where}: answer must be a string or null")
        items.append(
            QAItem(
                question=entry["question"],
                answer=answer,
                sources=_strings(entry.get("sources", []), f"{where}.sources"),
                related=_strings(entry.get("related", []), f"{where}.related"),
            )
        )
    return items


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def to_jsonl_line(messages: Sequence[ChatMessage]) -> str:
    payload = {"messages": [{"role": m.role, "content": m.content} for m in messages]}
    return json.dumps(payload, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m almanac.finetune.examples",
        description="Build training conversations in the app's prompt format from Q&A items.",
    )
    parser.add_argument("--kb", type=Path, required=True, help="folder of the documents")
    parser.add_argument("--qa", type=Path, required=True, help="hand-written items (JSON)")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=int, default=2, help="conversations per answer")
    parser.add_argument("--embedding-model", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    from almanac.core.embedding.embedding import SentenceTransformerEmbedder

    # Chunk sizes are measured with the embedder's tokenizer, as at ingestion.
    embedder = SentenceTransformerEmbedder(args.embedding_model)
    passages = kb_passages(
        args.kb, embedder.count_tokens, ChunkingConfig(max_tokens=embedder.max_tokens)
    )
    try:
        conversations = build_dataset(
            load_qa(args.qa), passages, seed=args.seed, variants=args.variants
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(to_jsonl_line(c) + "\n" for c in conversations), "utf-8")
    refusals = sum(1 for c in conversations if c[-1].content == REFUSAL)
    print(f"{len(conversations)} conversations ({refusals} refusals) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
