"""Plain text and reStructuredText, plus the span helpers the other readers share.

Every reader ends the same way: headings cut the extracted text into sections. The helpers here do
that cutting and trimming in one place, so the ``page_text[start:end] == text`` invariant is kept
by construction rather than re-derived per format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from almanac.core.documents.encoding import decode_text
from almanac.core.records import ParsedDocument, Section

HeadingPath = tuple[str, ...]

_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


@dataclass(frozen=True, slots=True)
class HeadingCut:
    """Heading markup at ``text[start:end]`` (excluded from sections); ``path`` applies after it."""

    start: int
    end: int
    path: HeadingPath


def trimmed_section(
    text: str, start: int, end: int, path: HeadingPath, page: int | None = None
) -> Section | None:
    """The section ``text[start:end]`` without surrounding whitespace, or None when blank."""
    span = text[start:end]
    stripped = span.strip()
    if not stripped:
        return None
    start += len(span) - len(span.lstrip())
    return Section(stripped, path, page, start, start + len(stripped))


def sections_between(
    text: str,
    cuts: Iterable[HeadingCut],
    *,
    start: int = 0,
    initial_path: HeadingPath = (),
    page: int | None = None,
) -> list[Section]:
    """Split ``text[start:]`` at heading cuts (sorted by position, non-overlapping)."""
    sections: list[Section] = []
    path = initial_path
    for cut in cuts:
        section = trimmed_section(text, start, cut.start, path, page)
        if section is not None:
            sections.append(section)
        start, path = cut.end, cut.path
    section = trimmed_section(text, start, len(text), path, page)
    if section is not None:
        sections.append(section)
    return sections


class HeadingStack:
    """Tracks the enclosing headings: a heading closes every open heading at its level or deeper."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def push(self, level: int, title: str) -> HeadingPath:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, title))
        return self.path

    @property
    def path(self) -> HeadingPath:
        return tuple(title for _, title in self._open)


class BlockWriter:
    """Builds extracted text from blocks joined by blank lines, cutting sections at headings.

    Heading titles are written into the text (a viewer shows them) but, as in Markdown, are not
    part of the following section's span.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._cuts: list[HeadingCut] = []
        self._headings = HeadingStack()

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if title:
            start = self._append(title)
            self._cuts.append(HeadingCut(start, self._size, self._headings.push(level, title)))

    def block(self, text: str, *, preformatted: bool = False) -> None:
        # Preformatted blocks keep the first line's indentation; only blank lines around go.
        text = _BLANK_LINES.sub("", text.rstrip()) if preformatted else text.strip()
        if text:
            self._append(text)

    def finish(self) -> tuple[str, list[Section]]:
        text = "".join(self._parts)
        return text, sections_between(text, self._cuts)

    def _append(self, text: str) -> int:
        if self._parts:
            self._parts.append("\n\n")
            self._size += 2
        start = self._size
        self._parts.append(text)
        self._size += len(text)
        return start


def read(data: bytes, kind: str = "txt") -> ParsedDocument:
    text, warnings = decode_text(data)
    if kind == "rst":
        return ParsedDocument("rst", (text,), tuple(_rst_sections(text)), warnings=warnings)
    # Plain text often underlines its titles too ("Version 4.2\n-----------"); only the common
    # underline characters count, so a row of dots or quotes in prose is never taken for one.
    sections = tuple(_rst_sections(text, _PLAIN_TEXT_ADORNMENTS))
    if not sections:
        sections = tuple(s for s in [trimmed_section(text, 0, len(text), ())] if s is not None)
    return ParsedDocument("txt", (text,), sections, warnings=warnings)


_ADORNMENT = re.compile(r"""([=\-~^"'`#*+:.])\1+[ \t]*""")
_RST_ADORNMENTS = "=-~^\"'`#*+:."
_PLAIN_TEXT_ADORNMENTS = "=-~*#"


def _rst_sections(text: str, adornments: str = _RST_ADORNMENTS) -> list[Section]:
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first use = levels
    path: HeadingPath = ()
    cuts: list[HeadingCut] = []
    after_title = False
    i = 0
    while i < len(lines):
        found = _rst_title_at(
            lines, i, after_title or i == 0 or not lines[i - 1].strip(), adornments
        )
        after_title = found is not None
        if found is None:
            i += 1
            continue
        title, style, height = found
        if style not in styles:
            styles.append(style)
        path = (*path[: styles.index(style)], title)
        end = min(starts[i + height], len(text))
        cuts.append(HeadingCut(starts[i], end, path))
        i += height
    return sections_between(text, cuts)


def _rst_title_at(
    lines: list[str], i: int, blank_before: bool, adornments: str
) -> tuple[str, tuple[str, bool], int] | None:
    """(title, adornment style, lines used) when a section title starts at line ``i``."""

    def adornment(text: str) -> re.Match[str] | None:
        match = _ADORNMENT.fullmatch(text)
        return match if match and match.group(1) in adornments else None

    line = lines[i]
    below = lines[i + 1] if i + 1 < len(lines) else ""
    over = adornment(line)
    if over and i + 2 < len(lines):
        title = below.strip()
        under = adornment(lines[i + 2])
        if (
            title
            and not _ADORNMENT.fullmatch(below)
            and under
            and under.group(1) == over.group(1)
            and len(line.rstrip()) >= len(title)
        ):
            return title, (over.group(1), True), 3
    under = adornment(below)
    title = line.rstrip()
    if (
        blank_before
        and under
        and title
        and not title[0].isspace()
        and not over
        and len(below.rstrip()) >= len(title)
    ):
        return title, (under.group(1), False), 2
    return None
