"""Does each answer sentence rest on a passage it cites? A cheap check, run on every answer.

Two signals, either suffices: embedding similarity between the sentence and a cited passage, and
word overlap (numbers, names and error codes copied from the passage are strong evidence that the
embedding of a short sentence can miss).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from almanac.core.answering.citations import marker_numbers, split_sentences, strip_markers

if TYPE_CHECKING:
    # numpy loads with the embedder, not with this module (the settings import it).
    import numpy as np

    from almanac.core.embedding.embedding import Embedder

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


def is_claim(sentence: str) -> bool:
    """A sentence that states something checkable: two or more content words ("Thanks!", a
    heading or a list number are not)."""
    return len(_content_words(strip_markers(sentence))) >= 2


class SupportChecker:
    """Checks sentences against numbered passages; each passage is embedded once, on first use,
    so checking sentence by sentence while an answer streams costs one small embedding each."""

    def __init__(
        self,
        passages: Mapping[int, str],
        embedder: Embedder,
        *,
        similarity: float = 0.5,
        overlap: float = 0.6,
    ) -> None:
        self.passages = dict(passages)
        self.embedder = embedder
        self.similarity = similarity
        self.overlap = overlap
        self._vectors: dict[int, np.ndarray] = {}
        self._words: dict[int, set[str]] = {}

    def _passage_vectors(self, numbers: Sequence[int]) -> None:
        missing = [n for n in dict.fromkeys(numbers) if n not in self._vectors]
        if missing:
            vectors = self.embedder.embed([self.passages[n] for n in missing])
            self._vectors.update(zip(missing, vectors, strict=True))

    def unsupported(self, sentences: Sequence[str]) -> list[str]:
        """Of ``sentences``, the claims with no citation or not supported by what they cite."""
        checks: list[tuple[str, str, list[int]]] = []
        unsupported: list[str] = []
        for sentence in sentences:
            if not is_claim(sentence):
                continue
            cited = [n for n in marker_numbers(sentence) if n in self.passages]
            if not cited:
                unsupported.append(sentence)
            else:
                checks.append((sentence, strip_markers(sentence), cited))
        if checks:
            import numpy as np

            self._passage_vectors([n for _, _, cited in checks for n in cited])
            sentence_vecs = self.embedder.embed([plain for _, plain, _ in checks])
            for (sentence, plain, cited), vec in zip(checks, sentence_vecs, strict=True):
                best = max(float(np.dot(vec, self._vectors[n])) for n in cited)
                words = _content_words(plain)
                shared = max(len(words & self._passage_words(n)) for n in cited) / len(words)
                if best < self.similarity and shared < self.overlap:
                    unsupported.append(sentence)
        # Keep the given order.
        order = {s: i for i, s in enumerate(sentences)}
        return sorted(unsupported, key=lambda s: order.get(s, 0))

    def supported(self, sentence: str) -> bool:
        """A claim that cites a passage which supports it."""
        return (
            is_claim(sentence)
            and any(n in self.passages for n in marker_numbers(sentence))
            and not self.unsupported([sentence])
        )

    def _passage_words(self, number: int) -> set[str]:
        if number not in self._words:
            self._words[number] = _content_words(self.passages[number])
        return self._words[number]


def unsupported_sentences(
    answer: str,
    passages: Mapping[int, str],
    embedder: Embedder,
    *,
    similarity: float = 0.5,
    overlap: float = 0.6,
    exempt: Sequence[str] = (),
    checker: SupportChecker | None = None,
) -> list[str]:
    """Sentences with no citation, or whose cited passages don't support them. ``checker``
    (built over the same passages) reuses the passage vectors it already has."""
    sentences = [s for s in split_sentences(answer) if not any(e in s for e in exempt)]
    checker = checker or SupportChecker(passages, embedder, similarity=similarity, overlap=overlap)
    return checker.unsupported(sentences)
