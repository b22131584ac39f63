"""Sanity checks for the support-kb training set (plain Python 3, no dependencies).

    python3 models/finetune/support-kb/check.py

- qa.json is a JSON list of items in the format of models/finetune/example/qa.json;
- every anchor (sources and related) occurs exactly once across the KB's documents
  (case-sensitive, whitespace-normalized) and is 3-25 words long;
- every answer cites only [1]..[len(sources)], cites every source, and every sentence ends
  with a marker; refusals have answer null, no sources and at most 3 related anchors;
- questions are unique, and every follow_up_of names an earlier question in the file.

With --chunks (needs the app's dependencies, e.g. .venv/bin/python) it also chunks the documents
with the app's chunker and rough token counts, and reports anchors that no single chunk holds
and items whose sources land in the same chunk.
Whether a refusal question is really unanswered can't be checked mechanically: that was judged by
hand when writing them.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC_SUFFIXES = {".md", ".txt"}
MARKER = re.compile(r"\[(\d+)\]")


def norm(text: str) -> str:
    return " ".join(text.split())


def documents() -> dict[str, str]:
    return {
        p.relative_to(HERE).as_posix(): norm(p.read_text(encoding="utf-8"))
        for p in sorted(HERE.rglob("*"))
        if p.is_file() and p.suffix in DOC_SUFFIXES
    }


def check(items: list, docs: dict[str, str]) -> list[str]:
    errors: list[str] = []
    questions: list[str] = []
    for i, item in enumerate(items):
        where = f"item {i} ({item.get('question', '?')!r})"
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            errors.append(f"{where}: not an object with a question")
            continue
        allowed = {"question", "answer", "sources", "related", "follow_up_of"}
        if extra := set(item) - allowed:
            errors.append(f"{where}: unknown keys {sorted(extra)}")
        answer = item.get("answer", "missing")
        sources = item.get("sources", [])
        related = item.get("related", [])
        if answer is None:
            if sources:
                errors.append(f"{where}: a refusal has sources")
            if len(related) > 3:
                errors.append(f"{where}: more than 3 related anchors")
        elif isinstance(answer, str):
            if not sources:
                errors.append(f"{where}: an answer without sources")
            if related:
                errors.append(f"{where}: an answer with related anchors")
            cited = {int(n) for n in MARKER.findall(answer)}
            if bad := sorted(n for n in cited if not 1 <= n <= len(sources)):
                errors.append(f"{where}: markers {bad} outside 1..{len(sources)}")
            if missing := sorted(set(range(1, len(sources) + 1)) - cited):
                errors.append(f"{where}: sources {missing} never cited")
            # Every sentence ends with a marker: split after ". " etc. that follow "]".
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", answer.strip()):
                if not re.search(r"\]\s*[.!?]?$", sentence):
                    errors.append(f"{where}: sentence without a marker: {sentence!r}")
        else:
            errors.append(f"{where}: answer must be a string or null")
        for anchor in [*sources, *related]:
            if not isinstance(anchor, str) or not anchor.strip():
                errors.append(f"{where}: empty anchor")
                continue
            needle = norm(anchor)
            words = len(needle.split())
            if not 3 <= words <= 25:
                errors.append(f"{where}: anchor of {words} words: {anchor!r}")
            hits = sum(text.count(needle) for text in docs.values())
            if hits != 1:
                errors.append(f"{where}: anchor occurs {hits} times: {anchor!r}")
        if "follow_up_of" in item and item["follow_up_of"] not in questions:
            errors.append(f"{where}: follow_up_of names no earlier question")
        questions.append(item["question"])
    for question, n in Counter(questions).items():
        if n > 1:
            errors.append(f"question asked {n} times: {question!r}")
    return errors


def chunk_check(items: list) -> list[str]:
    """Anchors that no single chunk contains, and items whose sources share a chunk, with the
    app's chunker and a rough token count. The builder measures with the embedder's real
    tokenizer, which isn't needed here: the check runs at several word-piece-per-word ratios
    (1.0 to 1.7, around the ~1.3 typical of English) so that anchors hold up wherever it cuts."""
    sys.path.insert(0, str(HERE.parents[2] / "desktop"))
    from almanac.core.documents import read_document
    from almanac.core.indexing.chunking import Chunker, ChunkingConfig

    paths = [p for p in sorted(HERE.rglob("*")) if p.is_file() and p.suffix in DOC_SUFFIXES]
    errors: set[str] = set()
    for ratio in (1.0, 1.3, 1.7):

        def count(text: str, ratio: float = ratio) -> int:
            return round(len(re.findall(r"\w+|[^\w\s]", text)) * ratio)

        chunker = Chunker(count, ChunkingConfig())
        texts = []
        for p in paths:
            for c in chunker.chunk_document(str(p), read_document(p)):
                # The builder also finds an anchor in a chunk's label (its heading path).
                texts.append(norm(c.text) + " | " + " > ".join(c.heading_path))
        for item in items:
            for anchor in [*item.get("sources", []), *item.get("related", [])]:
                if not any(norm(anchor) in t for t in texts):
                    errors.add(f"no single chunk holds {anchor!r} ({item['question']!r})")
            # The builder cites the first chunk holding each anchor: two sources, two passages.
            firsts = [
                next((i for i, t in enumerate(texts) if norm(a) in t), None)
                for a in item.get("sources", [])
            ]
            if len(firsts) > 1 and len(set(firsts)) < len(firsts):
                errors.add(f"sources share a chunk: {item['question']!r}")
    return sorted(errors)


def main() -> int:
    items = json.loads((HERE / "qa.json").read_text(encoding="utf-8"))
    if not isinstance(items, list):
        print("qa.json: expected a list")
        return 1
    docs = documents()
    errors = check(items, docs)
    if "--chunks" in sys.argv:
        errors += chunk_check(items)
    for error in errors:
        print(error)
    kinds = Counter(
        ("follow-up " if "follow_up_of" in it else "")
        + ("refusal" if it.get("answer") is None else "answer")
        + (" (2 sources)" if len(it.get("sources", [])) > 1 else "")
        for it in items
    )
    words = {name: len(text.split()) for name, text in docs.items()}
    print(f"{len(items)} items: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"{len(docs)} documents, {min(words.values())}-{max(words.values())} words each")
    print("OK" if not errors else f"{len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
