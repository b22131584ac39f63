"""A conversation as Markdown, with everything the chat showed: each answer's sources (file, page,
heading), its warnings (unsupported sentences, general knowledge, stopped) and withheld model text
labelled as such; and a file name for it that reads like its title.

Built from the chat session's turns (the answers themselves), so an export says exactly what the
user saw, including for answers of old conversations read back from history.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol

from almanac.core.answering.citations import citation_location
from almanac.core.records import Answer, AnswerMode, Citation

# The window writes a citation's heading after an em dash (the command line, after " - ").
CITATION_DASH = " \u2014 "

__all__ = ["UNSUPPORTED_LABEL", "answer_markdown", "conversation_markdown", "export_file_name"]

UNSUPPORTED_LABEL = "Unsupported by your documents"
_NAME_LIMIT = 60


class _Turn(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def answer(self) -> Answer | None: ...


def citation_line(c: Citation) -> str:
    """``[1] faq.md, page 3 — Heading`` (file name only: the folders are the user's business)."""
    return f"[{c.number}] " + citation_location(c.path, c.page, c.heading, dash=CITATION_DASH)


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.strip().splitlines())


def answer_markdown(answer: Answer) -> str:
    """One answer with its sources and warnings (also what "Copy" puts on the clipboard)."""
    blocks: list[str] = []
    if answer.withheld:
        first = answer.text.strip().splitlines()[0] if answer.text.strip() else ""
        blocks.append(first)
        blocks.append(
            f"_Warning: the model's answer was withheld ({UNSUPPORTED_LABEL.lower()}):_\n\n"
            + _quote(answer.unsupported_text)
        )
    elif answer.mode is AnswerMode.SOURCES_ONLY:
        blocks.append(answer.text.strip().splitlines()[0] if answer.text.strip() else "")
    else:
        blocks.append(answer.text.strip())
    if answer.stopped:
        blocks.append("_(stopped before the end)_")
    if answer.unsupported_sentences:
        listed = "\n".join(f"- {s}" for s in answer.unsupported_sentences)
        blocks.append(f"_Warning: not supported by the cited passages:_\n\n{listed}")
    if answer.mode is AnswerMode.GENERAL:
        blocks.append("_Warning: general knowledge, not from your documents._")
    if answer.citations:
        title = "Closest passages" if answer.withheld else "Sources"
        lines = []
        for c in answer.citations:
            snippet = " ".join(c.text.split())
            lines.append(f"- {citation_line(c)}" + (f"\n  > {snippet}" if snippet else ""))
        blocks.append(f"**{title}:**\n\n" + "\n".join(lines))
    if answer.also_retrieved:
        lines = [f"- {citation_line(c)}" for c in answer.also_retrieved]
        blocks.append("**Also retrieved (not cited):**\n\n" + "\n".join(lines))
    return "\n\n".join(b for b in blocks if b)


def conversation_markdown(title: str, turns: Sequence[_Turn]) -> str:
    blocks = [f"# {title.strip() or 'Conversation'}"]
    for t in turns:
        if t.role == "user":
            blocks.append(f"## You\n\n{t.text.strip()}")
        elif t.answer is not None:
            blocks.append(f"## Almanac\n\n{answer_markdown(t.answer)}")
        else:
            blocks.append(f"## Almanac\n\n_{t.text.strip()}_")
    return "\n\n".join(blocks) + "\n"


def export_file_name(title: str, suffix: str = ".md") -> str:
    """A title as a file name: letters, digits, spaces and dashes, no trailing punctuation,
    at most 60 characters cut at a word: "How do I reset my code?" -> "How do I reset my code.md".
    """
    text = unicodedata.normalize("NFKC", title)
    text = re.sub(r"[^\w\s-]+", " ", text)  # \w keeps letters of any script
    text = re.sub(r"[\s_]+", " ", text).strip(" -")
    if len(text) > _NAME_LIMIT:
        text = text[:_NAME_LIMIT].rsplit(" ", 1)[0].strip(" -")
    return (text or "conversation") + suffix
