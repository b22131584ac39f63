"""The prompt the model sees: fixed system text, then numbered sources, then history and question.

Order matters for speed: llama.cpp keeps the evaluated prefix of the previous prompt, so the part
that never changes (the system text) comes first and the part that changes most (the question) last.
The fine-tuning recipe builds its training prompts with these same functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from almanac import _resources
from almanac.core.answering.citations import citation_location
from almanac.core.llm.base import ChatMessage

SOURCES_HEADER = "Sources:"
NO_SOURCES = "Sources: (none)"


# Chat-template control sequences of the common model families. Document text and questions are
# untrusted: rendered verbatim and tokenized with special tokens enabled, "<|im_start|>system" in a
# PDF would become a real role switch. A zero-width joiner inside keeps the text readable but inert.
# These static patterns apply always; a loaded model adds its own vocabulary's special tokens
# (SmolLM2's "<filename>", "<gh_stars>", ...), which no list of families can anticipate.
_CONTROL = re.compile(
    r"<\|[A-Za-z0-9_]{1,40}\|>"  # ChatML, Llama 3, Phi: <|im_start|>, <|eot_id|>, <|end|>
    r"|\[/?INST\]|<</?SYS>>"  # Llama 2, Mistral
    r"|</?s>"  # SentencePiece BOS/EOS
    r"|<(?:start|end)_of_turn>"  # Gemma
)
_JOINER = "\u200d"


def _defuse(match: re.Match[str]) -> str:
    token = match.group(0)
    return token[0] + _JOINER + token[1:]


class Neutralizer:
    """Defuses control-token text in untrusted text: the static patterns plus ``special_tokens``,
    the text of every special token of the loaded model (see ``LlamaCppEngine.special_tokens``).

    Longest tokens are tried first, so "<|im_start|>" is never split as "<|im_start" + "|>".
    """

    def __init__(self, special_tokens: Iterable[str] = ()) -> None:
        # A one-character token can't be split by a joiner; whitespace-only ones are never
        # control sequences a document could smuggle in as text.
        tokens = sorted(
            {t for t in special_tokens if len(t) >= 2 and t.strip()}, key=lambda t: (-len(t), t)
        )
        self.special_tokens: tuple[str, ...] = tuple(tokens)
        self._vocab = re.compile("|".join(map(re.escape, tokens))) if tokens else None

    def __call__(self, text: str) -> str:
        if self._vocab is not None:
            # Again until nothing matches: what is left of a defused token ("|im_start|>" after
            # "<" + joiner) may itself be another token; each pass only shortens joiner-free runs.
            for _ in range(max(map(len, self.special_tokens))):
                defused = self._vocab.sub(_defuse, text)
                if defused == text:
                    break
                text = defused
        return _CONTROL.sub(_defuse, text)


_STATIC = Neutralizer()


def neutralize(text: str, neutralizer: Neutralizer | None = None) -> str:
    return (neutralizer or _STATIC)(text)


@dataclass(frozen=True, slots=True)
class Source:
    """One numbered passage as shown to the model."""

    number: int
    label: str  # "manual.pdf, page 4 - Signing in > Password reset"
    text: str


def default_system_prompt() -> str:
    return (_resources.prompts_dir() / "system.txt").read_text(encoding="utf-8").strip()


def source_label(path: str, page: int | None, heading: str, root: str | None = None) -> str:
    return citation_location(path, page, heading, root=root)


def render_sources(sources: Sequence[Source], neutralizer: Neutralizer | None = None) -> str:
    if not sources:
        return NO_SOURCES
    clean = neutralizer or _STATIC
    # Collapse whitespace runs inside passages: they cost tokens and mean nothing to the model.
    blocks = [f"[{s.number}] {clean(s.label)}\n{clean(' '.join(s.text.split()))}" for s in sources]
    return SOURCES_HEADER + "\n\n" + "\n\n".join(blocks)


def answered_turns(history: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The earlier turns a prompt can carry: each question with the answer that followed it.

    A question with no answer of the model's after it (refused before the model was asked,
    stopped, failed: the front ends keep only the model's own answers) is left out, as are
    system messages: two user turns in a row are an error in Gemma's template ("turns must
    alternate") and would show the model a question it seems to have ignored."""
    turns: list[ChatMessage] = []
    question: ChatMessage | None = None
    for message in history:
        if message.role == "user":
            question = message  # a later question replaces one left unanswered
        elif message.role == "assistant" and question is not None:
            turns += [question, message]
            question = None
    return turns


def build_messages(
    system_prompt: str,
    sources: Sequence[Source],
    history: Sequence[ChatMessage],
    question: str,
    neutralizer: Neutralizer | None = None,
) -> list[ChatMessage]:
    """The system prompt is trusted (a setting); sources, history and the question are not."""
    clean = neutralizer or _STATIC
    system = f"{system_prompt.strip()}\n\n{render_sources(sources, clean)}"
    return [
        ChatMessage("system", system),
        *[ChatMessage(m.role, clean(m.content)) for m in answered_turns(history)],
        ChatMessage("user", clean(question.strip())),
    ]
