from __future__ import annotations

import itertools

import pytest

from almanac.core.embedding.embedding import embedding_text
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.records import ParsedDocument, Section


def _doc(
    text: str, heading: tuple[str, ...] = ("Guide",), page: int | None = None
) -> ParsedDocument:
    pages = (text,)
    return ParsedDocument(
        kind="txt",
        pages=pages,
        sections=(Section(text, heading, page, 0, len(text)),),
        paged=page is not None,
    )


def _words(n: int, prefix: str = "word") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


@pytest.fixture
def chunker(embedder) -> Chunker:
    return Chunker(
        embedder.count_tokens, ChunkingConfig(target_tokens=60, max_tokens=256, overlap_tokens=12)
    )


def test_offsets_are_exact_and_within_limits(chunker: Chunker, embedder) -> None:
    paragraphs = [
        f"Paragraph {p}. "
        + " ".join(f"Sentence {p}.{s} talks about syncing files safely." for s in range(6))
        for p in range(8)
    ]
    text = "\n\n".join(paragraphs)
    doc = _doc(text)
    chunks = chunker.chunk_document("/kb/guide.txt", doc)
    assert len(chunks) > 5
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        embedded = embedding_text(chunk.heading_path, chunk.text)
        assert embedder.count_tokens(embedded) + 2 <= 256
        assert chunker.config.target_tokens >= embedder.count_tokens(chunk.text)
    # Every character of the section is covered by some chunk (no text silently dropped).
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_never_cuts_mid_word(chunker: Chunker) -> None:
    text = " ".join(["supercalifragilistic"] * 400)  # no sentence boundaries at all
    chunks = chunker.chunk_document("/kb/a.txt", _doc(text))
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.start == 0 or text[chunk.start - 1] == " "
        assert chunk.end == len(text) or text[chunk.end] == " "


def test_prefers_paragraph_boundaries(chunker: Chunker) -> None:
    para = "This paragraph explains one topic in a few words. It has two sentences."
    text = "\n\n".join(f"{para} Topic {i}." for i in range(12))
    chunks = chunker.chunk_document("/kb/a.txt", _doc(text))
    for chunk in chunks[:-1]:
        assert text[chunk.end : chunk.end + 2] == "\n\n", chunk.text[-40:]


def test_overlap_between_consecutive_chunks(chunker: Chunker) -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(80))  # one long paragraph
    chunks = chunker.chunk_document("/kb/a.txt", _doc(text))
    assert len(chunks) >= 3
    overlaps = [a.end > b.start for a, b in itertools.pairwise(chunks)]
    assert any(overlaps)
    for a, b in itertools.pairwise(chunks):
        assert b.start > a.start  # progress


def test_giant_token_is_split_and_fits(embedder) -> None:
    chunker = Chunker(embedder.count_tokens, ChunkingConfig(target_tokens=100))
    blob = "x" * 5000  # a base64-like wall without whitespace
    chunks = chunker.chunk_document("/kb/a.txt", _doc(blob, heading=()))
    assert "".join(c.text for c in chunks) == blob
    assert all(embedder.count_tokens(c.text) <= 100 for c in chunks)


def test_hash_depends_on_heading_and_text(chunker: Chunker) -> None:
    a = chunker.chunk_document("/kb/a.txt", _doc("Same text here.", heading=("A",)))[0]
    b = chunker.chunk_document("/kb/b.txt", _doc("Same text here.", heading=("A",)))[0]
    c = chunker.chunk_document("/kb/a.txt", _doc("Same text here.", heading=("B",)))[0]
    assert a.chunk_hash == b.chunk_hash  # path-independent: a renamed file reuses its vectors
    assert a.chunk_hash != c.chunk_hash


def test_pages_and_headings_are_kept() -> None:
    page1, page2 = "Intro text on page one.", "Details on page two."
    doc = ParsedDocument(
        kind="pdf",
        pages=(page1, page2),
        sections=(
            Section(page1, ("Manual", "Intro"), 1, 0, len(page1)),
            Section(page2, ("Manual", "Details"), 2, 0, len(page2)),
        ),
        paged=True,
    )
    chunks = Chunker(lambda s: len(s.split())).chunk_document("/kb/m.pdf", doc)
    assert [(c.page, c.heading, c.text) for c in chunks] == [
        (1, "Manual > Intro", page1),
        (2, "Manual > Details", page2),
    ]


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        ChunkingConfig(target_tokens=300, max_tokens=256)
    with pytest.raises(ValueError):
        ChunkingConfig(target_tokens=50, overlap_tokens=50)


EDGE_TEXTS = [
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e. " * 60,  # accents the normalizer strips
    "\u540c\u6b65\u6587\u4ef6\u5939\u3002 " * 120 + "\n\nEnd.",  # CJK: one token per character
    "See https://example.com/a/very/long/path?with=query&and=more for details. " * 30,
    "Line one\x1cline two\x1dline three.\u2028Next. " * 50,  # control chars Python calls space
    ("x" * 3000) + " tail words here.",  # a giant word cut by size
    "Emoji \U0001f600 and symbols \u00a9 \u2122 (tm). " * 80,
    "Tabs\tand   many    spaces\n\n\n\nand blank lines.\r\n" * 40,
]


@pytest.mark.parametrize("config", [ChunkingConfig(), ChunkingConfig(60, 256, 12)])
def test_counting_from_offsets_gives_the_same_chunks(embedder, sample_kb, config) -> None:
    from almanac.core.documents import read_document

    per_span = Chunker(embedder.count_tokens, config)
    from_offsets = Chunker(embedder.count_tokens, config, token_offsets=embedder.token_offsets)
    docs = [(str(p), read_document(p)) for p in sorted(sample_kb.rglob("*")) if p.is_file()]
    docs += [(f"/kb/edge-{i}.txt", _doc(t)) for i, t in enumerate(EDGE_TEXTS)]
    assert len(docs) > len(EDGE_TEXTS) + 5
    for path, doc in docs:
        expected = per_span.chunk_document(path, doc)
        got = from_offsets.chunk_document(path, doc)
        assert [(c.start, c.end, c.chunk_hash) for c in got] == [
            (c.start, c.end, c.chunk_hash) for c in expected
        ], path
        for c in got:  # and the budget holds, whatever the counts were
            assert embedder.count_tokens(embedding_text(c.heading_path, c.text)) + 2 <= 256


def test_a_token_across_a_cut_counts_on_both_sides() -> None:
    text = "alpha beta gamma delta"
    # A fake tokenizer whose one token straddles the space between beta and gamma.
    offsets = [(0, 5), (6, 13), (13, 16), (17, 22)]
    chunker = Chunker(
        lambda s: len(s.split()), ChunkingConfig(2, 8, 0, 0), token_offsets=lambda _: offsets
    )
    chunks = chunker.chunk_document("/kb/x.txt", _doc(text, heading=()))
    # gamma counts the straddling token too (2), so it can't share a 2-token chunk with delta;
    # counted once, on beta's side only, it would have (gamma + delta = 2).
    assert [c.text for c in chunks] == ["alpha beta", "gamma", "delta"]
