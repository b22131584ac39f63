"""The prompt the model sees: fixed system text, then numbered sources, then history and question.

Order matters for speed: llama.cpp keeps the evaluated prefix of the previous prompt, so the part
that never changes (the system text) comes first and the part that changes most (the question) last.
The fine-tuning recipe builds its training prompts with these same functions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from almanac.core.llm.base import ChatMessage

_PROMPTS = Path(__file__).resolve().parents[3] / "resources" / "prompts"
SOURCES_HEADER = "Sources:"
NO_SOURCES = "Sources: (none)"


# Chat-template control sequences of the common model families. Document text and questions are
# untrusted: rendered verbatim and tokenized with special tokens enabled, "<|im_start|>system" in a
# PDF would become a real role switch. A zero-width joiner inside keeps the text readable but inert.
_CONTROL = re.compile(
    r"<\|[A-Za-z0-9_]{1,40}\|>"  # ChatML, Llama 3, Phi: <|im_start|>, <|eot_id|>, <|end|>
    r"|\[/?INST\]|<</?SYS>>"  # Llama 2, Mistral
    r"|</?s>"  # SentencePiece BOS/EOS
    r"|<(?:start|end)_of_turn>"  # Gemma
)


def neutralize(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group(0)[0] + "\u200d" + m.group(0)[1:], text)


@dataclass(frozen=True, slots=True)
class Source:
    """One numbered passage as shown to the model."""

    number: int
    label: str  # "manual.pdf, page 4 - Signing in > Password reset"
    text: str


def default_system_prompt() -> str:
    return (_PROMPTS / "system.txt").read_text(encoding="utf-8").strip()


def source_label(path: str, page: int | None, heading: str, root: str | None = None) -> str:
    shown = path
    if root and path.startswith(root.rstrip("/") + "/"):
        shown = path[len(root.rstrip("/")) + 1 :]
    else:
        shown = Path(path).name
    label = shown + (f", page {page}" if page is not None else "")
    return f"{label} - {heading}" if heading else label


def render_sources(sources: Sequence[Source]) -> str:
    if not sources:
        return NO_SOURCES
    # Collapse whitespace runs inside passages: they cost tokens and mean nothing to the model.
    blocks = [
        f"[{s.number}] {neutralize(s.label)}\n{neutralize(' '.join(s.text.split()))}"
        for s in sources
    ]
    return SOURCES_HEADER + "\n\n" + "\n\n".join(blocks)


def build_messages(
    system_prompt: str,
    sources: Sequence[Source],
    history: Sequence[ChatMessage],
    question: str,
) -> list[ChatMessage]:
    system = f"{system_prompt.strip()}\n\n{render_sources(sources)}"
    return [
        ChatMessage("system", system),
        *[ChatMessage(m.role, neutralize(m.content)) for m in history if m.role != "system"],
        ChatMessage("user", neutralize(question.strip())),
    ]
