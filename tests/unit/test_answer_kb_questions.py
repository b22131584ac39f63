"""The held-out answer benchmark set (benchmarks/answer_kb) stays honest.

Every answerable question's expected fact must be in the text the app itself extracts from the
named document (and page, for the PDF), so a model is never marked wrong for missing a fact the
documents don't hold; every unanswerable question's premise words must be nowhere in the
documents, so a model is never marked wrong for refusing a question they do answer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from almanac.core.documents import read_document
from almanac.core.records import ParsedDocument

REPO = Path(__file__).resolve().parents[2]
KB = REPO / "benchmarks" / "answer_kb"
QUESTIONS = json.loads((KB / "questions.json").read_text(encoding="utf-8"))
DOCS = KB / QUESTIONS["documents"]
ITEMS: list[dict[str, Any]] = QUESTIONS["questions"]
ANSWERABLE = [q for q in ITEMS if q["kind"] == "answerable"]
UNANSWERABLE = [q for q in ITEMS if q["kind"] == "unanswerable"]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


# The benchmark's own matcher, so "occurs in the document" means what "the answer states it" means.
BENCH = _load(REPO / "benchmarks" / "answer_quality.py", "answer_quality_bench")


def _flat(text: str) -> str:
    # PDF lines break where the layout wrapped them, not where the fact ends.
    return " ".join(text.split()).casefold()


_parsed: dict[str, ParsedDocument] = {}


def _document(rel: str) -> ParsedDocument:
    if rel not in _parsed:
        _parsed[rel] = read_document(DOCS / rel)
    return _parsed[rel]


def _all_files() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_file())


def test_the_set_has_the_promised_shape() -> None:
    assert len(ANSWERABLE) >= 40
    assert len(UNANSWERABLE) >= 20
    assert {q["kind"] for q in ITEMS} == {"answerable", "unanswerable"}
    assert Counter(q["category"] for q in UNANSWERABLE).keys() == {
        "near-topic",
        "false-premise",
        "off-topic",
    }
    ids = [q["id"] for q in ITEMS]
    assert len(set(ids)) == len(ids)
    texts = [_flat(q["question"]) for q in ITEMS]
    assert len(set(texts)) == len(texts)
    files = _all_files()
    kinds = {Path(f).suffix for f in files}
    assert {".pdf", ".docx", ".md", ".html", ".txt", ".csv"} <= kinds
    # Every document is asked about, so none is only a distractor.
    assert set(files) == {q["file"] for q in ANSWERABLE}
    pdf = _document(next(f for f in files if f.endswith(".pdf")))
    assert len(pdf.pages) >= 5
    assert {q["page"] for q in ANSWERABLE if q["file"].endswith(".pdf")} == set(
        range(1, len(pdf.pages) + 1)
    )


@pytest.mark.parametrize("item", ANSWERABLE, ids=[q["id"] for q in ANSWERABLE])
def test_expected_fact_is_in_the_named_document(item: dict[str, Any]) -> None:
    assert item["must_contain"] and all(s.strip() for s in item["must_contain"])
    doc = _document(item["file"])
    if doc.paged:
        page = item.get("page")
        assert isinstance(page, int), "a PDF answer names its page"
        assert 1 <= page <= len(doc.pages)
        text = doc.page_text(page)
    else:
        assert "page" not in item, "only paged formats have pages"
        text = "\n".join(doc.pages)
    assert BENCH.states_fact(text, item["must_contain"]), (
        f"none of {item['must_contain']} occurs in {item['file']}"
    )


@pytest.mark.parametrize("item", UNANSWERABLE, ids=[q["id"] for q in UNANSWERABLE])
def test_unanswerable_premise_occurs_nowhere(item: dict[str, Any]) -> None:
    everything = _flat("\n".join(p for f in _all_files() for p in _document(f).pages))
    for premise in item["must_contain"]:
        assert _flat(premise) not in everything, f"{premise!r} is in the documents"


def test_committed_pdf_and_docx_are_what_the_builder_writes() -> None:
    build = _load(KB / "build.py", "answer_kb_build")
    assert build.build_pdf(build.MANUAL_PAGES, "Larkspur TR-7 Terminal Hardware Guide") == (
        build.PDF_PATH.read_bytes()
    )
    for path, blocks, title, subject in (
        (
            build.WARRANTY_PATH,
            build.WARRANTY_DOC,
            "Larkspur Warranty and Repairs Policy",
            "Repairs",
        ),
        (build.ROLES_PATH, build.ROLES_DOC, "Roles and Permissions in Larkspur Hub", "Roles"),
    ):
        assert build.build_docx(blocks, title, subject) == path.read_bytes(), path.name


def test_the_matcher_reads_numbers_whole() -> None:
    assert BENCH.states_fact("Charge it for 2\nhours [1].", ["2 hours"])
    assert not BENCH.states_fact("Upload within 72 hours.", ["2 hours"])
    assert not BENCH.states_fact("up to 25 terminals", ["up to 2"])
    assert BENCH.states_fact("Clean the contacts with a CLEANING card.", ["clean"])
    assert BENCH.states_fact("It costs \u00a389.00.", ["\u00a389"])


def test_training_material_never_mentions_the_held_out_product() -> None:
    # The set measures documents a model has not seen: the fine-tuning sources must not quote it.
    leaks = [
        path
        for path in (REPO / "models" / "finetune").rglob("*")
        if path.is_file()
        and path.stat().st_size < 64 * 2**20
        and b"larkspur" in path.read_bytes().lower()
    ]
    assert not leaks


def test_a_model_spec_names_its_adapter_and_chat_format(tmp_path: Path) -> None:
    base, adapter = tmp_path / "base.gguf", tmp_path / "lora@1.gguf"
    base.write_bytes(b"GGUF")
    adapter.write_bytes(b"GGUF")
    spec = BENCH.parse_model(f"gemma={base}+{adapter}@gemma")
    assert (spec.name, spec.path, spec.adapter, spec.chat_format) == (
        "gemma",
        base,
        adapter,
        "gemma",
    )
    plain = BENCH.parse_model(f"base={base}+{adapter}")
    assert (plain.path, plain.adapter, plain.chat_format) == (base, adapter, None)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown chat format 'llama9'"):
        BENCH.parse_model(f"x={base}@llama9")
