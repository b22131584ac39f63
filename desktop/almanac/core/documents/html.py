"""HTML: visible block-level text with page chrome (navigation, scripts, hidden parts) removed."""

from __future__ import annotations

import codecs
import re

from bs4 import BeautifulSoup
from bs4.element import CData, NavigableString, Tag

from almanac.core.documents.encoding import decode_text
from almanac.core.documents.errors import ExpansionLimitError
from almanac.core.documents.limits import MAX_HTML_ELEMENTS, MAX_NESTING_DEPTH
from almanac.core.documents.text import BlockWriter
from almanac.core.records import ParsedDocument

_NOISE = ("script", "style", "noscript", "template", "nav", "aside", "iframe", "svg", "button")
_NOISE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset(
    {"address", "article", "blockquote", "body", "caption", "center", "dd", "details", "dialog"}
    | {"div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup"}
    | {"hr", "html", "legend", "li", "main", "ol", "p", "section", "summary", "ul"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)
_SPACES = re.compile(r"\s+")
_START_TAG = re.compile(r"<[A-Za-z]")


def read(data: bytes, kind: str = "html") -> ParsedDocument:
    text, warnings = _decode(data)
    # Counted before parsing, at C speed: a page of millions of tiny elements would take
    # gigabytes as a tree. Every start tag begins "<letter"; stray ones only over-count.
    elements = text.count("<")
    if elements > MAX_HTML_ELEMENTS:
        elements = sum(1 for _ in _START_TAG.finditer(text))
    if elements > MAX_HTML_ELEMENTS:
        raise ExpansionLimitError(
            f"HTML page too complex: {elements:,} elements (the limit is {MAX_HTML_ELEMENTS:,})"
        )
    soup = BeautifulSoup(text, "lxml")
    depth = _depth(soup)
    if depth > MAX_NESTING_DEPTH:
        raise ExpansionLimitError(
            f"HTML nested too deeply: {depth:,} levels (the limit is {MAX_NESTING_DEPTH})"
        )
    _remove_noise(soup)
    writer = BlockWriter()
    title = soup.title.get_text(" ") if soup.title else ""
    if title.strip() and soup.find("h1") is None:
        writer.heading(0, title)
    _Walker(writer).walk(soup.body or soup)
    extracted, sections = writer.finish()
    return ParsedDocument("html", (extracted,), tuple(sections), warnings=warnings)


def _depth(soup: BeautifulSoup) -> int:
    """How deeply elements nest, without recursion (the point is to refuse deep trees)."""
    deepest = 0
    stack: list[tuple[Tag, int]] = [(soup, 0)]
    while stack:
        tag, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in tag.contents if isinstance(child, Tag))
    return deepest


def _decode(data: bytes) -> tuple[str, tuple[str, ...]]:
    # A declared charset beats guessing, as in browsers; a BOM beats both (decode_text handles it).
    declared = _META_CHARSET.search(data[:4096])
    if declared and not data.startswith(
        (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    ):
        name = declared.group(1).decode("ascii").lower()
        # WHATWG: pages labelled Latin-1/ASCII are really decoded as windows-1252.
        if name in ("iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii"):
            name = "cp1252"
        if name.startswith(("utf-16", "utf-32")):
            name = "utf-8"  # ASCII-readable bytes can't be UTF-16; the label is a copy-paste error
        try:
            text = data.decode(name)
        except (LookupError, UnicodeDecodeError):
            pass
        else:
            if "\x00" not in text:
                return text.replace("\r\n", "\n").replace("\r", "\n"), ()
    return decode_text(data)


def _remove_noise(soup: BeautifulSoup) -> None:
    doomed: list[Tag] = list(soup.find_all(_NOISE))
    for tag in soup.find_all(True):
        if (
            _is_hidden(tag)
            or tag.get("role") in _NOISE_ROLES
            or "headerlink" in tag.get_attribute_list("class")
        ):
            doomed.append(tag)
    # A page-level header/footer is site chrome; inside an article it is the article's own title.
    doomed += [
        t for t in soup.find_all(["header", "footer"]) if t.find_parent(["article", "main"]) is None
    ]
    # ASP.NET-style pages wrap the whole body in one <form>; only drop forms that hold no prose.
    doomed += [
        f
        for f in soup.find_all("form")
        if f.find(["p", "h1", "h2", "h3", "article", "main"]) is None
    ]
    for tag in doomed:
        if not tag.decomposed:
            tag.decompose()


def _is_hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).lower() == "true":
        return True
    return bool(_HIDDEN_STYLE.search(str(tag.get("style", ""))))


class _Walker:
    """Depth-first walk that gathers inline text until a block boundary flushes it as one block."""

    def __init__(self, writer: BlockWriter) -> None:
        self._writer = writer
        self._inline: list[str] = []

    def walk(self, node: Tag) -> None:
        self._visit(node)
        self._flush()

    def _visit(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Tag):
                self._element(child)
            elif type(child) in (NavigableString, CData):  # not comments, doctypes, PIs
                self._inline.append(_SPACES.sub(" ", str(child)))

    def _element(self, tag: Tag) -> None:
        name = tag.name
        if name in _HEADINGS:
            self._flush()
            self._writer.heading(_HEADINGS[name], tag.get_text(" ").rstrip("¶"))
        elif name == "pre":
            self._flush()
            self._writer.block(tag.get_text(), preformatted=True)
        elif name == "table":
            self._flush()
            self._writer.block(_table_text(tag))
        elif name == "br":
            self._inline.append("\n")
        elif name in _BLOCKS:
            self._flush()
            self._visit(tag)
            self._flush()
        else:
            self._visit(tag)

    def _flush(self) -> None:
        lines = (" ".join(line.split()) for line in "".join(self._inline).split("\n"))
        self._writer.block("\n".join(line for line in lines if line))
        self._inline.clear()


def _table_text(table: Tag) -> str:
    lines: list[str] = []
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        lines.append(" ".join(caption.get_text(" ").split()))
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue  # rows of a nested table are part of their cell's text
        cells = (
            " ".join(cell.get_text(" ").split())
            for cell in row.find_all(["td", "th"], recursive=False)
        )
        line = " | ".join(cell for cell in cells if cell)
        if line:
            lines.append(line)
    return "\n".join(lines)
