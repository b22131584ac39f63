"""Which words of a question no document contains: the real LanceDB full-text index, asked a
word at a time (the grounding check's absent-word rule rests on it)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.retrieval.retrieval import Searcher
from almanac.core.store.store import FTS_STOP_WORDS, Store

# Common English words, function words first: none of them may be reported absent when a
# document has it, whatever the index's tokenizer drops.
COMMON = """
    i me my myself we our ours ourselves you your yours yourself he him his himself she her hers
    herself it its itself they them their theirs themselves yourselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into
    through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very can will just should now also could would may
    might must shall every mostly others owned downs theses upon onto across along among around
    behind beside beyond within without toward towards yet still already always never often
    sometimes usually terminal cradle printer receipt battery payment refund network cable
    charging plan device
"""


@pytest.fixture(scope="module")
def store_with_words(tmp_path_factory, embedder) -> Store:
    root = tmp_path_factory.mktemp("absent")
    docs = root / "docs"
    docs.mkdir()
    words = COMMON.split()
    # Each word in a sentence of its own, so stemming and stop-word removal see it as text does.
    (docs / "words.md").write_text(
        "# Vocabulary\n\n" + "\n\n".join(f"Here the word {w} appears." for w in words) + "\n",
        encoding="utf-8",
    )
    (docs / "cables.md").write_text(
        "# Cables\n\nThe charging cables come in three lengths.\n", encoding="utf-8"
    )
    store = Store(root / "kb", dim=embedder.dim, embedder_name=embedder.name)
    Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig())).ingest([docs])
    store.ensure_indexes()
    return store


def test_no_word_a_document_has_is_reported_absent(store_with_words) -> None:
    wrongly_absent = [w for w in COMMON.split() if store_with_words.contains_word(w) is False]
    assert wrongly_absent == []


def test_every_listed_stop_word_is_one_the_index_drops(store_with_words) -> None:
    # Otherwise the list hides words the index could answer for (a LanceDB upgrade changed it).
    table = store_with_words._chunks
    listed = sorted(FTS_STOP_WORDS & set(COMMON.split()))
    found = [
        w
        for w in listed
        if table.search(w, query_type="fts", fts_columns="search_text").limit(1).to_list()
    ]
    assert found == []


def test_words_no_document_has(store_with_words, embedder) -> None:
    store = store_with_words
    assert store.contains_word("cradle") is True
    assert store.contains_word("Cable") is True  # stemmed, any case
    assert store.contains_word("enterprise") is False
    assert store.contains_word("than") is None  # a stop word: the index can't tell
    assert store.contains_word("e-1042") is None  # a code: not a plain word
    searcher = Searcher(store, embedder)
    try:
        assert searcher.absent_words(["enterprise", "cradle", "kitchen", "than"]) == {
            "enterprise",
            "kitchen",
        }
    finally:
        searcher.close()


def test_without_a_full_text_index_nothing_is_absent(tmp_path: Path, embedder, sample_kb) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(sample_kb, docs)
    store = Store(tmp_path / "kb", dim=embedder.dim, embedder_name=embedder.name)
    assert store.contains_word("enterprise") is None
    Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig())).ingest([docs])
    store.ensure_indexes()
    text = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in docs.rglob("*.md"))
    assert re.search(r"\bdevices\b", text)
    assert store.contains_word("devices") is True
    assert store.contains_word("enterprise") is False


def test_asking_the_index_prints_nothing(store_with_words, capfd) -> None:
    # Asked once per question word of every answer: a deprecation warning from LanceDB on each
    # query filled the terminal of `almanac ask` (it writes to the process's stderr itself).
    capfd.readouterr()
    assert store_with_words.contains_word("cables") is True
    assert store_with_words.contains_word("zeppelin") is False
    captured = capfd.readouterr()
    assert "warn" not in (captured.out + captured.err).lower()


def test_codes_are_looked_up_by_the_term_the_index_keeps(tmp_path, embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "errors.md").write_text(
        "# Errors\n\nNW-418 means the certificate is not trusted. The TR-7L has 4G.\n",
        encoding="utf-8",
    )
    store = Store(tmp_path / "kb", dim=embedder.dim, embedder_name=embedder.name)
    Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig())).ingest([docs])
    store.ensure_indexes()
    searcher = Searcher(store, embedder)
    try:
        assert searcher.absent_codes("What do NW-418 and E-1042 mean on a TR-7L?") == ("E-1042",)
        assert searcher.absent_codes("Is 1.5 GB enough for NW-418 logs?") == ()
        assert store.contains_word("nw418") is True and store.contains_word("nw419") is False
        assert store.contains_word("1042") is None  # a bare number matches too much to tell
    finally:
        searcher.close()
