"""Does each answer sentence rest on a passage it cites? A cheap check, run on every answer.

Two signals, either suffices: embedding similarity between the sentence and a cited passage, and
word overlap (numbers, names and error codes copied from the passage are strong evidence that the
embedding of a short sentence can miss).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from almanac.core.citations import marker_numbers, split_sentences, strip_markers
from almanac.core.embedding import Embedder

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.]*[A-Za-z0-9]|[A-Za-z0-9]")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "so",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "you",
        "your",
        "yes",
        "no",
        "not",
    ]
)


def _content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP}


def unsupported_sentences(
    answer: str,
    passages: Mapping[int, str],
    embedder: Embedder,
    *,
    similarity: float = 0.5,
    overlap: float = 0.6,
    exempt: Sequence[str] = (),
) -> list[str]:
    """Sentences with no citation, or whose cited passages don't support them."""
    sentences = [s for s in split_sentences(answer) if not any(e in s for e in exempt)]
    checks: list[tuple[str, str, list[int]]] = []
    unsupported: list[str] = []
    for sentence in sentences:
        plain = strip_markers(sentence)
        if len(_content_words(plain)) < 2:
            continue  # "Thanks!", a heading: no claim to check
        cited = [n for n in marker_numbers(sentence) if n in passages]
        if not cited:
            unsupported.append(sentence)
        else:
            checks.append((sentence, plain, cited))
    if not checks:
        return unsupported
    cited_numbers = sorted({n for _, _, cited in checks for n in cited})
    vectors = embedder.embed(
        [plain for _, plain, _ in checks] + [passages[n] for n in cited_numbers]
    )
    sentence_vecs = vectors[: len(checks)]
    passage_vecs = dict(zip(cited_numbers, vectors[len(checks) :], strict=True))
    for (sentence, plain, cited), vec in zip(checks, sentence_vecs, strict=True):
        best = max(float(np.dot(vec, passage_vecs[n])) for n in cited)
        words = _content_words(plain)
        shared = max(len(words & _content_words(passages[n])) for n in cited) / len(words)
        if best < similarity and shared < overlap:
            unsupported.append(sentence)
    # Keep the answer's order.
    order = {s: i for i, s in enumerate(sentences)}
    return sorted(unsupported, key=lambda s: order.get(s, 0))
