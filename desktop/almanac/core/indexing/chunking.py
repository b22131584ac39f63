"""Splitting sections into embedder-sized chunks at semantic boundaries.

Sizes are measured with the embedder's own tokenizer: all-MiniLM-L6-v2 silently drops everything
past 256 word pieces, so a chunk that is "about 1,000 characters" can lose its second half. Every
chunk's embedded text (heading context + span) is guaranteed to fit ``max_tokens``.

Given the tokenizer's character offsets (``token_offsets``), a section is tokenized once and any
span inside it is counted from those offsets, instead of tokenizing every paragraph and sentence
again (3 tokenizer calls per piece were 8% of an int8 ingest). Spans are cut at whitespace, where
the tokenizer splits anyway, so the counts are the same; a token that straddles a cut (only past a
character the tokenizer deletes) counts on both sides, so a count is never too low.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from almanac.core.embedding.embedding import embedding_text
from almanac.core.records import Chunk, ParsedDocument, Section

TokenCounter = Callable[[str], int]
# (start, end) character offsets of each token of a text, in order, no special tokens.
TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]
SpanCounter = Callable[[int, int], int]

# Boundary strength before a piece: lower is a better place to cut.
_PARAGRAPH, _LINE, _SENTENCE, _WORD, _CHAR = range(5)

_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n\s*")
_LINE_RE = re.compile(r"\n\s*")
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace and
# a capital, digit or opening quote. Cheap, and good enough for cut points: chunks overlap anyway.
_SENTENCE_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD_RE = re.compile(r"\s+")
_WINDOW_CHARS = 1 << 20


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    target_tokens: int = 160
    max_tokens: int = 256  # the embedder's hard limit, including special tokens
    overlap_tokens: int = 32
    special_tokens: int = 2  # [CLS] and [SEP]
    # A hard cap whatever the text looks like: the tokenizer turns any "word" over 100 characters
    # into one [UNK], so a megabyte without a space counts as one token. Prose at 160 tokens is
    # 600-1,000 characters, so the cap only ever cuts text that has no words to cut at.
    max_chars: int = 2000

    def __post_init__(self) -> None:
        if not 0 < self.target_tokens <= self.max_tokens - self.special_tokens:
            raise ValueError("target_tokens must be positive and leave room for special tokens")
        if self.max_chars < 16:
            raise ValueError("max_chars must be at least 16")
        if not 0 <= self.overlap_tokens < self.target_tokens:
            raise ValueError("overlap_tokens must be smaller than target_tokens")


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    boundary: int  # strength of the boundary *before* this piece


def chunk_hash(embedded: str) -> str:
    return hashlib.sha256(embedded.encode("utf-8")).hexdigest()[:32]


class Chunker:
    def __init__(
        self,
        count_tokens: TokenCounter,
        config: ChunkingConfig | None = None,
        token_offsets: TokenOffsets | None = None,
    ) -> None:
        self._count = count_tokens
        self._offsets = token_offsets
        self.config = config or ChunkingConfig()

    def chunk_document(self, doc_path: str, document: ParsedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in document.sections:
            page_text = document.page_text(section.page)
            for start, end in self._spans(page_text, section):
                text = page_text[start:end]
                embedded = embedding_text(section.heading_path, text)
                chunks.append(
                    Chunk(
                        doc_path=doc_path,
                        ordinal=len(chunks),
                        text=text,
                        heading_path=section.heading_path,
                        page=section.page,
                        start=start,
                        end=end,
                        chunk_hash=chunk_hash(embedded),
                    )
                )
        return chunks

    def _spans(self, page_text: str, section: Section) -> Iterator[tuple[int, int]]:
        cfg = self.config
        heading_cost = (
            self._count(" > ".join(section.heading_path) + "\n") if section.heading_path else 0
        )
        # A very long heading path must not starve the text: cap its share at half the budget.
        budget = cfg.max_tokens - cfg.special_tokens - min(heading_cost, cfg.max_tokens // 2)
        target = min(cfg.target_tokens, budget)
        pieces: list[_Piece] = []
        # A huge section is measured a window at a time: the tokenizer's offsets for a whole
        # 64 MB section would take gigabytes.
        for start, end in _windows(page_text, section.start, section.end, _WINDOW_CHARS):
            count = self._span_counter(page_text, start, end)
            window = self._pieces(page_text, start, end, _PARAGRAPH, target, count)
            if pieces and window:
                window[0] = _Piece(window[0].start, window[0].end, window[0].tokens, _PARAGRAPH)
            pieces.extend(window)
        yield from _pack(pieces, target, min(cfg.overlap_tokens, target // 2), cfg.max_chars)

    def _span_counter(self, text: str, start: int, end: int) -> SpanCounter:
        if self._offsets is None:
            return lambda s, e: self._count(text[s:e])
        offsets = self._offsets(text[start:end])
        starts = [start + a for a, _ in offsets]
        ends = [start + b for _, b in offsets]

        def count(s: int, e: int) -> int:
            # Tokens that overlap [s, e): those starting before e, less those ending by s.
            return max(0, bisect.bisect_left(starts, e) - bisect.bisect_right(ends, s))

        return count

    def _pieces(
        self, text: str, start: int, end: int, level: int, limit: int, count: SpanCounter
    ) -> list[_Piece]:
        """Split ``text[start:end]`` into pieces of at most ``limit`` tokens, coarse cuts first."""
        tokens = count(start, end)
        if tokens <= limit and end - start <= self.config.max_chars:
            return [_Piece(start, end, tokens, level)]
        if level == _CHAR:
            return self._char_pieces(text, start, end, limit)
        splitter = (_PARAGRAPH_RE, _LINE_RE, _SENTENCE_RE, _WORD_RE)[level]
        out: list[_Piece] = []
        for i, (s, e) in enumerate(_split_spans(text, start, end, splitter)):
            sub = self._pieces(text, s, e, level + 1, limit, count)
            if i > 0 and sub:
                sub[0] = _Piece(sub[0].start, sub[0].end, sub[0].tokens, level)
            out.extend(sub)
        return out

    def _char_pieces(self, text: str, start: int, end: int, limit: int) -> list[_Piece]:
        # Only reached by a single "word" longer than the whole budget (base64, a URL wall):
        # there is no word boundary to respect, so cut it by size.
        out: list[_Piece] = []
        pos = start
        while pos < end:
            size = max(1, min(end - pos, limit * 2, self.config.max_chars))
            while size > 1 and self._count(text[pos : pos + size]) > limit:
                size = size * 3 // 4
            out.append(_Piece(pos, pos + size, self._count(text[pos : pos + size]), _CHAR))
            pos += size
        return out


def _split_spans(
    text: str, start: int, end: int, pattern: re.Pattern[str]
) -> Iterator[tuple[int, int]]:
    pos = start
    for match in pattern.finditer(text, start, end):
        if match.start() > pos:
            yield pos, match.start()
        pos = match.end()
    if pos < end:
        yield pos, end


def _windows(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """``text[start:end]`` in spans of at most ``size`` characters, cut at the last paragraph
    break (else line break, else space) of each; the common section is one span."""
    while end - start > size:
        limit = start + size
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = text.rfind(sep, start + size // 2, limit)
            if cut >= 0:
                cut += len(sep)
                break
        if cut < 0:
            cut = limit
        yield start, cut
        start = cut
    if start < end:
        yield start, end


def _pack(
    pieces: list[_Piece], target: int, overlap: int, max_chars: int
) -> Iterator[tuple[int, int]]:
    """Greedy packing into spans of at most ``target`` tokens and ``max_chars`` characters, each
    new span re-reading a little of the previous one (never more than ``overlap`` tokens, never
    across a paragraph boundary)."""
    i = 0
    n = len(pieces)
    while i < n:
        total = pieces[i].tokens
        j = i + 1
        while (
            j < n
            and total + pieces[j].tokens <= target
            and pieces[j].end - pieces[i].start <= max_chars
        ):
            total += pieces[j].tokens
            j += 1
        # Prefer ending at the strongest boundary in the back half of the window, so a chunk
        # doesn't end one sentence into a new paragraph.
        if j < n:
            best = j
            for k in range(j - 1, i, -1):
                if (
                    pieces[k].boundary < pieces[best].boundary
                    and _tokens(pieces, i, k) * 2 >= total
                ):
                    best = k
            j = best
        yield pieces[i].start, pieces[j - 1].end
        if j >= n:
            break
        # Step back for overlap, but always make progress. Never across a cut made by size alone
        # (a wall of text with no words): that overlap would carry no context, only repeats.
        k = j
        back = 0
        while (
            k - 1 > i
            and _SENTENCE <= pieces[k].boundary < _CHAR
            and back + pieces[k - 1].tokens <= overlap
        ):
            k -= 1
            back += pieces[k].tokens
        i = k


def _tokens(pieces: list[_Piece], i: int, j: int) -> int:
    return sum(p.tokens for p in pieces[i:j])
