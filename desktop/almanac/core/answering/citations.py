"""[n] citation markers in model output: finding them, checking them, splitting sentences."""

from __future__ import annotations

import re
from pathlib import Path

# [1], [2, 3], [1][2]; also the full-width brackets some models emit.
MARKER_RE = re.compile(r"\s?[\[\uff3b](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]\uff3d]")
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*(?:\[\d[\d,\s]*\])+)?(?:\s+|$)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")


def marker_numbers(text: str) -> list[int]:
    """Every number cited, in order of first appearance."""
    seen: dict[int, None] = {}
    for match in MARKER_RE.finditer(text):
        for part in match.group(1).split(","):
            seen.setdefault(int(part), None)
    return list(seen)


def drop_invalid_markers(text: str, valid: set[int]) -> tuple[str, tuple[int, ...]]:
    """Remove numbers that point at no source; a marker left empty disappears entirely."""
    invalid: dict[int, None] = {}

    def fix(match: re.Match[str]) -> str:
        numbers = [int(p) for p in match.group(1).split(",")]
        kept = [n for n in numbers if n in valid]
        for n in numbers:
            if n not in valid:
                invalid.setdefault(n, None)
        if not kept:
            return ""
        lead = match.group(0)[0] if match.group(0)[0].isspace() else ""
        return lead + "".join(f"[{n}]" for n in kept)

    return MARKER_RE.sub(fix, text), tuple(invalid)


def split_sentences(text: str) -> list[str]:
    """Sentences and list items, each keeping the markers that follow it ("... minutes. [1]")."""
    out: list[str] = []
    for line in text.splitlines():
        line = _LIST_ITEM.sub("", line).strip()
        if not line or line.startswith("```"):
            continue
        start = 0
        for match in _SENTENCE_END.finditer(line):
            piece = line[start : match.end()].strip()
            if piece:
                out.append(piece)
            start = match.end()
        tail = line[start:].strip()
        if tail:
            out.append(tail)
    return out


def strip_markers(text: str) -> str:
    return MARKER_RE.sub("", text).strip()


def citation_location(
    path: str,
    page: int | None,
    heading: str = "",
    *,
    root: str | None = None,
    full_path: bool = False,
    dash: str = " - ",
) -> str:
    """Where a cited passage is, written one way for every front end: ``faq.md, page 3 - Heading``.

    The file is shown by its name (relative to ``root`` when it lies inside it), or by its whole
    path with ``full_path``; ``dash`` joins the heading (the window uses an em dash)."""
    if full_path:
        shown = path
    elif root and path.startswith(root.rstrip("/") + "/"):
        shown = path[len(root.rstrip("/")) + 1 :]
    else:
        shown = Path(path).name
    label = shown + (f", page {page}" if page is not None else "")
    return f"{label}{dash}{heading}" if heading else label
