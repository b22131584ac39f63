"""Markdown: the extracted text is the source itself, so offsets index the raw Markdown."""

from __future__ import annotations

import re
import threading
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from almanac.core.documents.encoding import decode_text
from almanac.core.documents.text import HeadingCut, HeadingStack, sections_between
from almanac.core.records import ParsedDocument

# YAML (---) or TOML (+++) front matter; YAML may also close with "...".
_FRONT_MATTER = re.compile(r"(---|\+\+\+)[ \t]*\n(?:.*?\n)?(?:\1|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def read(data: bytes, kind: str = "md") -> ParsedDocument:
    text, warnings = decode_text(data)
    body_start = _front_matter_end(text)
    # Blank lines stand in for the front matter so token line numbers still index ``text``;
    # commonmark alone would read "---\ntitle: x\n---" as a rule plus a setext heading.
    source = "\n" * text.count("\n", 0, body_start) + text[body_start:]
    env: dict[str, Any] = {}  # link reference definitions, for titles like "[Setup][s]"
    cuts = _heading_cuts(text, _PARSERS.blocks.parse(source, env), env)
    sections = sections_between(text, cuts, start=body_start)
    return ParsedDocument("md", (text,), tuple(sections), warnings=warnings)


class _Parsers(threading.local):
    """One pair of parsers per thread, made once: building a MarkdownIt was a third of the time
    to read a small file. ``blocks`` skips inline parsing (emphasis, links, ...) of every
    paragraph, another fifth: only heading titles need it, and ``inline`` does those."""

    def __init__(self) -> None:
        self.blocks = MarkdownIt("commonmark").disable("inline")
        self.inline = MarkdownIt("commonmark")


_PARSERS = _Parsers()


def _front_matter_end(text: str) -> int:
    match = _FRONT_MATTER.match(text)
    return match.end() if match else 0


def _heading_cuts(text: str, tokens: list[Token], env: dict[str, Any]) -> list[HeadingCut]:
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
    headings = HeadingStack()
    cuts: list[HeadingCut] = []
    for index, token in enumerate(tokens):
        # level 0: headings nested in lists or block quotes are content, not document structure.
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        first, last = token.map
        title = _title(tokens[index + 1], env) if index + 1 < len(tokens) else ""
        path = headings.push(int(token.tag[1:]), title) if title else headings.path
        end = line_starts[last] if last < len(line_starts) else len(text)
        cuts.append(HeadingCut(line_starts[first], end, path))
    return cuts


def _title(heading: Token, env: dict[str, Any]) -> str:
    if heading.type != "inline":
        return ""
    return " ".join(_plain_text(t) for t in _PARSERS.inline.parseInline(heading.content, env))


def _plain_text(inline: Token) -> str:
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split())
