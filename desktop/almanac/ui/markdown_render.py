"""Model output (Markdown) to the HTML subset the chat view shows.

Model output is untrusted text: it may echo HTML or links from documents or from the user. So raw
HTML is escaped (never rendered), Markdown links, images, autolinks and link reference definitions
stay literal text, and the only links in the result are our own ``cite:n`` anchors for ``[n]``
markers that point at a real source.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["CITE_SCHEME", "render_answer_html", "render_plain_html"]

CITE_SCHEME = "cite"

# Same shapes as almanac.core.answering.citations.MARKER_RE ([1], [2, 3], full-width brackets),
# without its
# optional leading space: the space belongs to the surrounding text.
_MARKER = re.compile(r"[\[\uff3b](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]\uff3d]")
_ENV_KEY = "almanac_valid_markers"


def render_answer_html(text: str, valid_markers: set[int]) -> str:
    """Markdown to HTML; each valid ``[n]`` becomes ``<a href="cite:n">[n]</a>``."""
    env: dict[str, Any] = {_ENV_KEY: frozenset(valid_markers)}
    return str(_parser().render(text, env))


def render_plain_html(text: str) -> str:
    """A user's message: shown exactly as typed (escaped), line breaks kept."""
    return "<p>" + html.escape(text).replace("\n", "<br>\n") + "</p>"


@functools.cache
def _parser() -> MarkdownIt:
    # html=False escapes raw HTML; the link rules are disabled so link syntax is shown literally
    # (a disabled "reference" rule also keeps "[1]: http://..." lines from vanishing).
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.disable(["link", "image", "autolink", "reference"])
    # After text_join, so each run of plain text is one token; code spans and blocks are other
    # token types, which is what keeps markers inside code unlinked.
    md.core.ruler.after("text_join", "almanac_citations", _link_citations)
    md.add_render_rule("almanac_citation", _render_citation)
    return md


def _link_citations(state: StateCore) -> None:
    valid: frozenset[int] = state.env.get(_ENV_KEY, frozenset())
    if not valid:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        for token in block.children:
            if token.type == "text" and _MARKER.search(token.content):
                children.extend(_split_markers(token.content, valid))
            else:
                children.append(token)
        block.children = children


def _split_markers(content: str, valid: frozenset[int]) -> list[Token]:
    out: list[Token] = []
    cursor = 0
    for match in _MARKER.finditer(content):
        numbers = [int(part) for part in match.group(1).split(",")]
        if not any(n in valid for n in numbers):
            continue  # left as the text the model wrote
        if match.start() > cursor:
            out.append(_text(content[cursor : match.start()]))
        for n in numbers:
            if n in valid:
                cite = Token("almanac_citation", "a", 0)
                cite.meta = {"number": n}
                out.append(cite)
            else:
                out.append(_text(f"[{n}]"))
        cursor = match.end()
    if cursor < len(content):
        out.append(_text(content[cursor:]))
    return out


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _render_citation(
    renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    n = int(tokens[idx].meta["number"])
    return f'<a href="{CITE_SCHEME}:{n}">[{n}]</a>'
