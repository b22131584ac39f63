"""The retrieval-augmented training data: sources come from the app's own search over a real KB,
about a third target the refusal, answers cite the passage that holds them, and nothing of the
evaluation material (held-out SQuAD articles, the answer-quality KB) reaches training."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from almanac.core.answering.prompting import SOURCES_HEADER
from almanac.core.evaluation.eval import squad_part
from almanac.finetune.examples import REFUSAL
from almanac.finetune.raft import (
    Builder,
    Item,
    Passages,
    _slug,
    squad_documents_and_items,
    support_items,
)

REPO = Path(__file__).resolve().parents[2]
SQUAD = REPO.parent / "shared" / "eval" / "squad" / "dev-v1.1.json"
TRAINING_DATA = REPO / "models" / "default" / "data" / "train.jsonl"
ANSWER_KB = REPO / "benchmarks" / "answer_kb"
_SOURCE = re.compile(r"^\[(\d+)\] (.*)$", re.M)


def _sources(system: str) -> dict[int, tuple[str, str]]:
    """Numbered sources of a rendered system prompt: label (file, heading) and text."""
    body = system.split(SOURCES_HEADER, 1)[1]
    blocks = re.split(r"\n\n(?=\[\d+\] )", body.strip())
    out: dict[int, tuple[str, str]] = {}
    for block in blocks:
        head, _, text = block.partition("\n")
        match = _SOURCE.match(head)
        assert match, block
        out[int(match.group(1))] = (match.group(2), text)
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def sample_items() -> list[Item]:
    return support_items(REPO / "models" / "finetune" / "example" / "qa.json", "sample-kb")


def test_sources_come_from_search_and_a_third_are_refusals(make_kb, sample_kb, sample_items):
    kb = make_kb()
    kb.ingestor.ingest([sample_kb])
    searched: dict[str, set[str]] = {}

    def search(query: str, k: int):
        hits = list(kb.searcher.search(query, k).hits)
        searched.setdefault(query, set()).update(_norm(h.text) for h in hits)
        return hits

    chunks = [c for path in sorted(kb.store.documents()) for c in kb.store.chunks_of(path)]
    from almanac.core.records import Hit

    passages = Passages(
        Hit(c.chunk_id, c.doc_path, c.page, c.start, c.end, c.heading, c.text, 0.0) for c in chunks
    )
    builder = Builder(search, passages, source_root=None, seed=3)
    conversations = builder.build(sample_items)
    assert len(conversations) >= len(sample_items) - 2
    refusals = [c for c in conversations if c.messages[-1].content == REFUSAL]
    assert 0.25 <= len(refusals) / len(conversations) <= 0.45
    by_question = {i.question: i for i in sample_items}
    for conversation in conversations:
        system, question, target = (
            conversation.messages[0].content,
            conversation.messages[-2].content,
            conversation.messages[-1].content,
        )
        item = by_question[question]
        sources = _sources(system)
        assert 3 <= len(sources) <= 5 or target == REFUSAL
        anchors = [_norm(a) for a in item.sources]
        holding = {
            n
            for n, (label, text) in sources.items()
            if any(a in _norm(f"{label} {text}") for a in anchors)  # a date may be in a heading
        }
        if target == REFUSAL:
            assert not holding, (question, sources)  # the answer's passage was taken out
        else:
            cited = {int(n) for n in re.findall(r"\[(\d+)\]", target)}
            assert cited and cited <= holding, (question, target, sources)
        # Every other passage came from searching this question, or is one of the near misses
        # the item names itself (``related``).
        related = [_norm(a) for a in item.related]
        for n, (label, text) in sources.items():
            if n not in holding and not any(a in _norm(f"{label} {text}") for a in related):
                assert _norm(text) in searched[question], (question, text)


def test_each_origin_gets_its_own_third_of_refusals(make_kb, sample_kb, sample_items):
    """Hand-written material with unanswerable items of its own beside material without any:
    each comes out about a third refusals, so "refuse" is never learned as a style of source."""
    kb = make_kb()
    kb.ingestor.ingest([sample_kb])
    chunks = [c for path in sorted(kb.store.documents()) for c in kb.store.chunks_of(path)]
    from almanac.core.records import Hit

    passages = Passages(
        Hit(c.chunk_id, c.doc_path, c.page, c.start, c.end, c.heading, c.text, 0.0) for c in chunks
    )
    native = sum(1 for i in sample_items if i.answer is None) / len(sample_items)
    assert native > 0.2  # the hand-written set has refusals of its own
    answerable = [replace(i, origin="plain") for i in sample_items if i.answer is not None]
    answerable = [i for i in answerable if i.follow_up_of is None]
    builder = Builder(
        lambda q, k: list(kb.searcher.search(q, k).hits), passages, source_root=None, seed=5
    )
    conversations = builder.build([*sample_items, *answerable, *answerable])
    for origin in ("sample-kb", "plain"):
        mine = [c for c in conversations if c.origin == origin]
        refused = sum(c.messages[-1].content == REFUSAL for c in mine) / len(mine)
        assert 0.26 <= refused <= 0.41, (origin, refused, len(mine))


@pytest.mark.parametrize("search_order", [True, False])
def test_sources_are_numbered_as_search_ranks_them(make_kb, sample_kb, sample_items, search_order):
    """As the app numbers them: the answering passage is [1] as often as search ranks it first;
    shuffled (the older data), every number about as often."""
    kb = make_kb()
    kb.ingestor.ingest([sample_kb])
    ranked: dict[str, list[str]] = {}

    def search(query: str, k: int):
        hits = list(kb.searcher.search(query, k).hits)
        ranked[query] = [_norm(h.text) for h in hits]
        return hits

    chunks = [c for path in sorted(kb.store.documents()) for c in kb.store.chunks_of(path)]
    from almanac.core.records import Hit

    passages = Passages(
        Hit(c.chunk_id, c.doc_path, c.page, c.start, c.end, c.heading, c.text, 0.0) for c in chunks
    )
    builder = Builder(search, passages, source_root=None, seed=3, search_order=search_order)
    items = [i for i in sample_items if i.follow_up_of is None]
    conversations = builder.build(items)
    in_order = cited_first = answers = 0
    for conversation in conversations:
        question = conversation.messages[-2].content
        order = ranked[question]
        texts = [_norm(text) for _, text in _sources(conversation.messages[0].content).values()]
        ranks = [order.index(t) for t in texts if t in order]
        in_order += ranks == sorted(ranks)
        target = conversation.messages[-1].content
        if target != REFUSAL:
            answers += 1
            cited_first += target.startswith("[1]") or "[1]" in target
    share_in_order = in_order / len(conversations)
    if search_order:
        assert share_in_order == 1.0
        assert cited_first / answers > 0.5
    else:
        assert share_in_order < 0.6
        assert cited_first / answers < 0.5


def test_squad_uses_only_the_training_articles(tmp_path):
    articles = []
    for a in range(8):
        context = f"Article {a} facts. The river number {a} is 10{a} km long. It flows north."
        qas = [
            {
                "id": f"{a}-q",
                "question": f"How long is river {a}?",
                "answers": [{"text": f"10{a} km", "answer_start": context.index(f"10{a} km")}],
            }
        ]
        articles.append({"title": f"River_{a}", "paragraphs": [{"context": context, "qas": qas}]})
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": articles}), encoding="utf-8")
    documents, items = squad_documents_and_items(path)
    train = {a for a in range(8) if squad_part(a) == "train"}
    assert len(train) == 6 and squad_part(3) == squad_part(7) == "heldout"
    assert sorted(documents) == sorted(f"squad/river-{a}.md" for a in train)
    assert {i.question for i in items} == {f"How long is river {a}?" for a in train}
    for item in items:
        assert item.answer is not None and item.answer.endswith("[1]")
        assert item.forbid[0] in item.answer and item.sources[0] in item.answer
    # The held-out articles, asked for by name (calibration data), are exactly the other two.
    heldout_docs, heldout_items = squad_documents_and_items(path, part="heldout")
    assert sorted(heldout_docs) == ["squad/river-3.md", "squad/river-7.md"]
    assert {i.question for i in heldout_items} == {"How long is river 3?", "How long is river 7?"}


def test_the_shipped_training_data_holds_no_evaluation_material():
    if not TRAINING_DATA.is_file():
        pytest.skip("no committed training data")
    training = TRAINING_DATA.read_text(encoding="utf-8")
    assert training.count("\n") > 500
    questions = json.loads((ANSWER_KB / "questions.json").read_text(encoding="utf-8"))
    for q in questions["questions"]:
        assert q["question"] not in training, q
    # The evaluation KB documents a product (the Larkspur TR-7) named on every page.
    assert "larkspur" in (ANSWER_KB / "docs" / "faq.md").read_text(encoding="utf-8").lower()
    assert "larkspur" not in training.lower()
    if SQUAD.is_file():
        data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
        labels: dict[str, set[bool]] = {"train": set(), "heldout": set()}
        for index, article in enumerate(data):
            title = article["title"].replace("_", " ")
            label = f"] {_slug(title)}.md - {title}\\n"  # as JSON writes the line break
            labels[squad_part(index)].add(label in training)
        assert labels["heldout"] == {False}  # no held-out article is ever shown as a source
        assert True in labels["train"]  # (the label format is the one looked for)
