"""Retrieval-augmented fine-tuning data: conversations whose sources come from the app's own search.

Each training conversation is exactly what the answer service would show the model: the system
prompt, 3-5 numbered sources, the history of a follow-up, the question. The sources are not picked
by hand: the documents are indexed with the app's ingestor and each question is searched with the
app's searcher, so the distractors beside the passage that answers are the near misses the model
will really see. About a third of the conversations hold no passage with the answer (the passage
that has it is taken out of the search results) and target the app's refusal, so the model learns
that "the sources look related" is not "the sources answer it".

Material: hand-written support items (``qa.json`` files beside their documents, see
``almanac.finetune.examples``) and SQuAD v1.1 dev paragraphs, of which every
``SQUAD_HELDOUT_EVERY``-th article is held out for evaluation and never used here.

    python -m almanac.finetune.raft --squad ../shared/eval/squad/dev-v1.1.json \\
        --support resources/sample-kb:models/finetune/example/qa.json \\
        --support models/finetune/support-kb:models/finetune/support-kb/qa.json \\
        --out build/raft/train.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from almanac.core.answering.prompting import (
    Source,
    build_messages,
    default_system_prompt,
    source_label,
)
from almanac.core.evaluation.eval import squad_part
from almanac.core.llm.base import ChatMessage
from almanac.core.records import Hit
from almanac.finetune.examples import REFUSAL, load_qa, to_jsonl_line

SOURCE_COUNTS = (3, 4, 5)
REFUSAL_SHARE = 1 / 3
SEARCH_DEPTH = 12  # hits searched per question; distractors are drawn from these
_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True, slots=True)
class Item:
    """A question with the anchors (exact text) of the passages that answer it.

    ``answer`` cites ``[k]`` for ``sources[k-1]``; ``None`` targets the refusal, shown with the
    passages of ``related`` (near misses). ``forbid``: texts no distractor may contain (the answer
    itself, so a second copy of the fact never sits among the "wrong" sources).
    """

    question: str
    answer: str | None
    sources: tuple[str, ...]
    origin: str
    related: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    follow_up_of: Item | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    messages: list[ChatMessage]
    origin: str
    kind: str  # "answer", "refusal", "follow-up", "follow-up-refusal"


@dataclass
class BuildStats:
    by_kind: dict[str, int] = field(default_factory=dict)
    by_origin: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def add(self, conversation: Conversation) -> None:
        self.by_kind[conversation.kind] = self.by_kind.get(conversation.kind, 0) + 1
        self.by_origin[conversation.origin] = self.by_origin.get(conversation.origin, 0) + 1

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"by_kind": self.by_kind, "by_origin": self.by_origin, "skipped": self.skipped}


# -- SQuAD ----------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "article"


def squad_documents_and_items(
    squad_json: Path, *, per_paragraph: int = 1, seed: int = 0, part: str = "train"
) -> tuple[dict[str, str], list[Item]]:
    """A part of SQuAD dev (``squad_part``: "train", or "heldout" for calibrating on articles
    training never saw) as Markdown documents (one per article, its paragraphs separated) and
    extractive items: the answer is the passage's sentence that holds the answer span, cited.
    Questions are sampled ``per_paragraph`` per paragraph."""
    data = json.loads(squad_json.read_text(encoding="utf-8"))["data"]
    rng = random.Random(seed)
    documents: dict[str, str] = {}
    items: list[Item] = []
    for index, article in enumerate(data):
        if squad_part(index) != part:
            continue
        title = str(article["title"]).replace("_", " ")
        name = f"squad/{_slug(title)}.md"
        paragraphs = [str(p["context"]).strip() for p in article["paragraphs"]]
        documents[name] = f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"
        for para in article["paragraphs"]:
            context = str(para["context"])
            qas = [qa for qa in para["qas"] if qa.get("answers")]
            previous: Item | None = None
            for qa in rng.sample(qas, min(len(qas), per_paragraph + 1)):
                answer = qa["answers"][0]
                sentence = _sentence_at(context, int(answer["answer_start"]))
                span = str(answer["text"]).strip()
                if not sentence or span not in sentence or len(sentence.split()) > 45:
                    continue
                item = Item(
                    question=str(qa["question"]).strip(),
                    answer=f"{sentence} [1]",
                    sources=(sentence,),
                    origin="squad",
                    forbid=(span,),
                )
                if previous is None:
                    items.append(item)
                    previous = item
                else:
                    # A second question on the same paragraph, asked after the first one.
                    items.append(_with_history(item, previous))
                    break
    return documents, items


def _with_history(item: Item, previous: Item) -> Item:
    return Item(
        item.question,
        item.answer,
        item.sources,
        item.origin,
        item.related,
        item.forbid,
        follow_up_of=previous,
    )


def _sentence_at(context: str, offset: int) -> str:
    start = 0
    for piece in _SENTENCE_END.split(context):
        at = context.find(piece, start)
        if at <= offset < at + len(piece):
            return " ".join(piece.split())
        start = at + len(piece)
    return ""


# -- hand-written support items -------------------------------------------------------------------


def support_items(qa_json: Path, origin: str) -> list[Item]:
    """``qa.json`` items (see ``almanac.finetune.examples.load_qa``); an item with
    ``"follow_up_of": "<earlier question>"`` is asked after that question and its answer."""
    raw = json.loads(qa_json.read_text(encoding="utf-8"))
    parsed = load_qa(qa_json)
    by_question: dict[str, Item] = {}
    items: list[Item] = []
    for entry, qa in zip(raw, parsed, strict=True):
        item = Item(qa.question, qa.answer, qa.sources, origin, qa.related)
        earlier = entry.get("follow_up_of")
        if isinstance(earlier, str):
            if earlier not in by_question:
                raise ValueError(f"{qa_json}: {qa.question!r} follows an unknown question")
            item = _with_history(item, by_question[earlier])
        by_question[qa.question] = item
        items.append(item)
    return items


# -- building conversations ----------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


class Passages:
    """Every chunk of the indexed documents, for finding the passage an anchor names."""

    def __init__(self, chunks: Iterable[Hit]) -> None:
        self.chunks = list(chunks)
        self._text = [_norm(c.text) for c in self.chunks]

    def containing(self, anchor: str) -> Hit | None:
        needle = _norm(anchor)
        for chunk, text in zip(self.chunks, self._text, strict=True):
            if needle in text:
                return chunk
        for chunk in self.chunks:  # a release's date may be only in its heading
            if needle in chunk.heading:
                return chunk
        return None


def _contains_any(hit: Hit, texts: Sequence[str]) -> bool:
    body = _norm(hit.text) + " " + hit.heading
    return any(_norm(t) in body for t in texts if t.strip())


class Builder:
    """Turns items into conversations with the app's search (``search(query, k) -> hits``)."""

    def __init__(
        self,
        search: Any,
        passages: Passages,
        *,
        source_root: str | None,
        seed: int = 0,
        refusal_share: float = REFUSAL_SHARE,
        system_prompt: str | None = None,
        search_order: bool = False,
    ) -> None:
        """``search_order``: sources numbered as the app's search ranks them, the answering
        passage where search put it (as the app shows them: it is [1] for about three questions in
        four); by default shuffled, every number equally likely. Trained on search order (session
        10), the default model refused 0.60 of the benchmark's unanswerable questions instead of
        0.80, with the same correct answers: it learned to copy from [1], answer or not."""
        self.search = search
        self.search_order = search_order
        self.passages = passages
        self.root = source_root
        self.rng = random.Random(seed)
        self.refusal_share = refusal_share
        self.system_prompt = system_prompt or default_system_prompt()
        self.stats = BuildStats()
        self.convert_share: dict[str, float] = {}  # by origin

    def build(self, items: Sequence[Item]) -> list[Conversation]:
        # Items without an answer are refusals already; turn just enough answerable ones into
        # refusals (their answering passage taken out) for the share to come out as asked, in
        # each origin on its own: with one share over all, the hand-written support material
        # (a quarter of it unanswerable by design) came out 43 % refusals and SQuAD 27 %, and
        # the model learned "support-style sources: refuse" instead of "no answer: refuse".
        for origin in sorted({i.origin for i in items}):
            mine = [i for i in items if i.origin == origin]
            unanswerable = sum(1 for i in mine if i.answer is None)
            answerable = len(mine) - unanswerable
            wanted = self.refusal_share * len(mine) - unanswerable
            share = min(1.0, max(0.0, wanted / answerable)) if answerable else 0.0
            self.convert_share[origin] = share
        out: list[Conversation] = []
        for item in items:
            conversation = self.conversation(item)
            if conversation is not None:
                out.append(conversation)
                self.stats.add(conversation)
        return out

    def conversation(self, item: Item) -> Conversation | None:
        history: list[ChatMessage] = []
        query = item.question
        if item.follow_up_of is not None:
            earlier = item.follow_up_of
            previous_answer = earlier.answer if earlier.answer is not None else REFUSAL
            history = [
                ChatMessage("user", earlier.question),
                ChatMessage("assistant", previous_answer),
            ]
            if item.origin != "squad":  # support follow-ups lean on the previous question
                query = f"{earlier.question} {item.question}"
        relevant: list[Hit] = []
        for anchor in item.sources:
            hit = self.passages.containing(anchor)
            if hit is None:
                self.stats.skip("anchor not found in any chunk")
                return None
            if hit not in relevant:
                relevant.append(hit)
        avoid = (*item.sources, *item.forbid)
        found = self.search(query, SEARCH_DEPTH)
        rank = {h.chunk_id: i for i, h in enumerate(found)}
        hits = [h for h in found if not _contains_any(h, avoid)]
        hits = [h for h in hits if h.chunk_id not in {r.chunk_id for r in relevant}]
        related = [self.passages.containing(a) for a in item.related]
        near = [h for h in related if h is not None and not _contains_any(h, avoid)]
        pool = [*near, *(h for h in hits if h not in near)]
        count = self.rng.choice(SOURCE_COUNTS)
        share = self.convert_share.get(item.origin, self.refusal_share)
        refuse = item.answer is None or self.rng.random() < share
        if refuse:
            shown = pool[:count]
            if len(shown) < 2:
                self.stats.skip("too few distractors")
                return None
            target = REFUSAL
            numbered = self._ordered([(h, None) for h in shown], rank)
        else:
            distractors = pool[: max(0, count - len(relevant))]
            numbered = self._ordered(
                [*((h, k) for k, h in enumerate(relevant, 1)), *((h, None) for h in distractors)],
                rank,
            )
            number_of = {k: n for n, (_, k) in enumerate(numbered, 1) if k is not None}
            assert item.answer is not None
            target = _MARKER.sub(lambda m: f"[{number_of[int(m.group(1))]}]", item.answer.strip())
        sources = [
            Source(n, source_label(h.path, h.page, h.heading, self.root), h.text)
            for n, (h, _) in enumerate(numbered, 1)
        ]
        messages = build_messages(self.system_prompt, sources, history, item.question)
        kind = ("follow-up-" if history else "") + ("refusal" if refuse else "answer")
        kind = kind.replace("follow-up-answer", "follow-up")
        return Conversation([*messages, ChatMessage("assistant", target)], item.origin, kind)

    def _ordered(
        self, pairs: list[tuple[Hit, int | None]], rank: dict[str, int]
    ) -> list[tuple[Hit, int | None]]:
        self.rng.shuffle(pairs)
        if self.search_order:
            # A passage search did not return (a hand-named near miss, an answer search missed)
            # goes anywhere among the others.
            spread = max(len(rank), 1)
            keys = {h.chunk_id: rank.get(h.chunk_id, self.rng.uniform(0, spread)) for h, _ in pairs}
            pairs.sort(key=lambda pair: keys[pair[0].chunk_id])
        return pairs


def dataset_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()


def build(
    *,
    squad: Path | None,
    support: Sequence[tuple[Path, Path]],
    work: Path,
    seed: int = 0,
    squad_per_paragraph: int = 1,
    squad_limit: int | None = None,
    embedder_backend: str | None = None,
    squad_split: str = "train",
    search_order: bool = False,
) -> tuple[list[Conversation], BuildStats]:
    """Index the material in ``work`` and build every conversation (deterministic for a seed)."""
    from almanac.app.services import build_services

    docs = work / "docs"
    items: list[Item] = []
    if squad is not None:
        documents, squad_items = squad_documents_and_items(
            squad, per_paragraph=squad_per_paragraph, seed=seed, part=squad_split
        )
        for name, text in documents.items():
            target = docs / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
        if squad_limit is not None:
            squad_items = random.Random(seed).sample(
                squad_items, min(squad_limit, len(squad_items))
            )
        items += squad_items
    folders = [docs] if squad is not None else []
    for folder, qa in support:
        items += support_items(qa, origin=folder.name)
        folders.append(folder)
    services = build_services(work / "kb", embedder_backend=embedder_backend)
    services.ingestor.ingest(folders, prune=True)
    chunks = [
        Hit(c.chunk_id, c.doc_path, c.page, c.start, c.end, c.heading, c.text, 0.0)
        for path in sorted(services.store.documents())
        for c in services.store.chunks_of(path)
    ]

    def search(query: str, k: int) -> list[Hit]:
        return list(services.searcher.search(query, k).hits)

    # The app labels sources by file name (AnswerService has no source root), so does training.
    builder = Builder(
        search, Passages(chunks), source_root=None, seed=seed, search_order=search_order
    )
    conversations = builder.build(items)
    random.Random(seed).shuffle(conversations)
    return conversations, builder.stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m almanac.finetune.raft",
        description="Build retrieval-augmented training conversations in the app's prompt format.",
    )
    parser.add_argument("--squad", type=Path, help="SQuAD v1.1 JSON (its training part is used)")
    parser.add_argument(
        "--support",
        action="append",
        default=[],
        metavar="DOCS:QA.json",
        help="a documents folder and its hand-written items (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--work", type=Path, help="index folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--squad-limit", type=int, help="at most N SQuAD items")
    parser.add_argument("--embedder", choices=("int8", "fp32"))
    parser.add_argument(
        "--search-order",
        action="store_true",
        help="number the sources in the order search ranks them, not shuffled (an experiment: "
        "fewer refusals, see Builder)",
    )
    args = parser.parse_args(argv)
    support: list[tuple[Path, Path]] = []
    for spec in args.support:
        folder, sep, qa = spec.rpartition(":")
        if not sep:
            parser.error(f"--support wants DOCS:QA.json, not {spec!r}")
        support.append((Path(folder), Path(qa)))
    try:
        with tempfile.TemporaryDirectory(prefix="almanac-raft-") as tmp:
            conversations, stats = build(
                squad=args.squad,
                support=support,
                work=args.work or Path(tmp),
                seed=args.seed,
                squad_limit=args.squad_limit,
                embedder_backend=args.embedder,
                search_order=args.search_order,
            )
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    lines = [to_jsonl_line(c.messages) for c in conversations]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    summary = {"conversations": len(lines), "sha256": dataset_sha256(lines), **stats.to_json()}
    args.out.with_suffix(".stats.json").write_text(json.dumps(summary, indent=2), "utf-8")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
