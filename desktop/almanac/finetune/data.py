"""Training data: JSONL chat conversations, checked line by line, and the held-out split.

One JSON object per line, ``{"messages": [{"role": "system"|"user"|"assistant", "content":
"..."}]}``. A conversation may open with one system turn, then alternates user and assistant and
ends with the assistant's answer (the part the model learns). Every problem names its line;
all problems are reported at once (up to a limit), so one run fixes a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.core.answering.answer import (
    _REFUSAL,  # the app's own test for "this answer is a refusal"
)
from almanac.core.llm.base import ChatMessage
from almanac.finetune.errors import DataError

ROLES = ("system", "user", "assistant")
MAX_PROBLEMS = 50


@dataclass(frozen=True, slots=True)
class Conversation:
    line: int  # 1-based line in the source file
    messages: tuple[ChatMessage, ...]

    @property
    def answer(self) -> str:
        return self.messages[-1].content

    @property
    def refusal(self) -> bool:
        return bool(_REFUSAL.search(self.answer))

    def key(self) -> str:
        """Identity for duplicate detection: roles and whitespace-normalized contents."""
        return json.dumps([(m.role, " ".join(m.content.split())) for m in self.messages])

    def to_json(self) -> dict[str, Any]:
        return {"messages": [{"role": m.role, "content": m.content} for m in self.messages]}


@dataclass(frozen=True, slots=True)
class DataStats:
    conversations: int
    refusals: int
    turns: int
    tokens_mean: float
    tokens_max: int

    def to_json(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "refusals": self.refusals,
            "assistant_turns": self.turns,
            "tokens_mean": round(self.tokens_mean, 1),
            "tokens_max": self.tokens_max,
        }


def load_jsonl(path: Path) -> list[Conversation]:
    """Read and check ``path``. Raises :class:`DataError` listing every problem found."""
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except FileNotFoundError as exc:
        raise DataError([f"training data not found: {path}"]) from exc
    except OSError as exc:
        raise DataError([f"cannot read {path}: {exc.strerror or exc}"]) from exc
    problems: list[str] = []
    conversations: list[Conversation] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(raw_lines, 1):
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"{path.name}: stopped after {MAX_PROBLEMS} problems")
            break
        where = f"{path.name} line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{where}: not UTF-8 text")
            continue
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        messages, problem = _parse_messages(item)
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        conversation = Conversation(number, messages)
        key = conversation.key()
        if key in first_seen:
            problems.append(f"{where}: duplicate of line {first_seen[key]}")
            continue
        first_seen[key] = number
        conversations.append(conversation)
    if problems:
        raise DataError(problems)
    if not conversations:
        raise DataError([f"{path.name}: no conversations"])
    return conversations


def _parse_messages(item: Any) -> tuple[tuple[ChatMessage, ...], str | None]:
    if not isinstance(item, dict) or "messages" not in item:
        return (), 'expected a JSON object with a "messages" list'
    raw = item["messages"]
    if not isinstance(raw, list) or not raw:
        return (), '"messages" must be a non-empty list'
    messages: list[ChatMessage] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            return (), f"{where} must be an object with role and content"
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            return (), f"{where}.role must be system, user or assistant, not {role!r}"
        if not isinstance(content, str):
            return (), f"{where}.content must be a string"
        if not content.strip():
            return (), f"{where} ({role}) is empty"
        messages.append(ChatMessage(role, content))
    problem = _check_order(messages)
    return tuple(messages), problem


def _check_order(messages: Sequence[ChatMessage]) -> str | None:
    turns = messages[1:] if messages[0].role == "system" else messages
    for i, m in enumerate(turns):
        index = i + (len(messages) - len(turns))
        want = "user" if i % 2 == 0 else "assistant"
        if m.role != want:
            if m.role == "system":
                return f"messages[{index}]: a system turn may only come first"
            return f"messages[{index}]: expected a {want} turn, got {m.role}"
    if not turns or turns[-1].role != "assistant":
        return "the last turn must be the assistant's answer (nothing to learn otherwise)"
    return None


def check_lengths(
    conversations: Sequence[Conversation],
    path: Path,
    count_tokens: Callable[[Conversation], int],
    max_length: int,
    context_length: int | None,
) -> list[int]:
    """Token counts (with the chat template). Over-long conversations are errors, never cut:
    a truncated conversation would train on a prompt without its answer."""
    problems: list[str] = []
    counts: list[int] = []
    for conversation in conversations:
        n = count_tokens(conversation)
        counts.append(n)
        where = f"{path.name} line {conversation.line}"
        if context_length is not None and n > context_length:
            problems.append(
                f"{where}: {n} tokens, more than the base model's context of {context_length}"
            )
        elif n > max_length:
            problems.append(
                f"{where}: {n} tokens, more than [train].max_length {max_length} "
                "(raise it in the recipe, or use fewer or shorter sources)"
            )
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems)
    return counts


def split_heldout(
    conversations: Sequence[Conversation], fraction: float, max_count: int, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """(train, held-out). Deterministic: conversations are ranked by a hash of their content
    and the seed, so the split does not depend on line order; refusals and answers are held
    out in proportion, so the evaluation sees both."""
    if fraction <= 0 or max_count <= 0 or len(conversations) < 4:
        return list(conversations), []
    want = min(max_count, max(1, round(len(conversations) * fraction)))
    groups = [[c for c in conversations if c.refusal], [c for c in conversations if not c.refusal]]
    held: set[int] = set()
    for group in groups:
        share = round(want * len(group) / len(conversations))
        if group and share == 0 and len(group) >= 1 / fraction:
            share = 1  # a group big enough to spare one gets one
        ranked = sorted(group, key=lambda c: _rank(c, seed))
        held.update(c.line for c in ranked[:share])
    train = [c for c in conversations if c.line not in held]
    heldout = [c for c in conversations if c.line in held]
    if not train:
        raise DataError(["no conversations left for training after the held-out split"])
    return train, heldout


def _rank(conversation: Conversation, seed: int) -> str:
    return hashlib.sha256(f"{seed}\n{conversation.key()}".encode()).hexdigest()


def stats(conversations: Sequence[Conversation], token_counts: Sequence[int]) -> DataStats:
    return DataStats(
        conversations=len(conversations),
        refusals=sum(1 for c in conversations if c.refusal),
        turns=sum(sum(1 for m in c.messages if m.role == "assistant") for c in conversations),
        tokens_mean=sum(token_counts) / len(token_counts) if token_counts else 0.0,
        tokens_max=max(token_counts, default=0),
    )


def write_jsonl(path: Path, conversations: Sequence[Conversation]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in conversations)
    path.write_text(text, encoding="utf-8")


def file_sha256(path: Path) -> str:
    from almanac.core.system.hashing import sha256_file

    return sha256_file(path)
