"""Full-text helpers: make identifiers (versions, error codes, dates) matchable as whole words.

LanceDB's tokenizer splits "4.2.0" into "4", "2", "0" and "NW-611" into "nw", "611": pieces that
match everywhere and mean nothing. Support questions are full of such identifiers, so both the
indexed text and the query also carry a compact form ("v420", "nw611") that only they share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LEXICAL_VERSION = 1

_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+(?:[._\-/:][A-Za-z0-9]+)+")
_SEPARATORS = re.compile(r"[._\-/:]")


def identifier_terms(text: str) -> list[str]:
    """Compact forms of identifiers that contain a digit, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _IDENTIFIER.finditer(text):
        raw = match.group(0)
        if not any(ch.isdigit() for ch in raw):
            continue  # "e.g", "sign-in": ordinary words the tokenizer already handles
        compact = _SEPARATORS.sub("", raw).lower()
        if compact.isdigit():
            compact = "v" + compact  # "4.2.0" must not collide with the number 420
        seen.setdefault(compact, None)
    return list(seen)


def with_identifier_terms(text: str, extra: Iterable[str] = ()) -> str:
    terms = [*identifier_terms(text), *extra]
    return f"{text}\n{' '.join(terms)}" if terms else text


def named_codes(text: str) -> dict[str, str]:
    """The codes ``text`` names ("E-1042", "TR-7L", "NW-611": identifiers with a letter and a
    digit), each as written mapped to its compact term, in order of first appearance. Numbers
    with a point or a colon ("1.5 GB", "10:30", "4.2.0") are not codes: a question may ask about
    a size or a time that no document writes out and still be answerable."""
    codes: dict[str, str] = {}
    for match in _IDENTIFIER.finditer(text):
        raw = match.group(0)
        if any(ch.isdigit() for ch in raw) and any(ch.isalpha() for ch in raw):
            codes.setdefault(raw, _SEPARATORS.sub("", raw).lower())
    return codes
