"""Training conversations are built in exactly the app's prompt format, with renumbered markers;
the shipped example dataset is reproducible from its source and valid."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from almanac.core.answering.answer import NOT_FOUND_TEXT
from almanac.core.answering.prompting import Source, build_messages, default_system_prompt
from almanac.core.indexing.chunking import ChunkingConfig
from almanac.finetune.data import load_jsonl
from almanac.finetune.evaluate import sources_in
from almanac.finetune.examples import (
    Passage,
    QAItem,
    build_conversation,
    build_dataset,
    find_passage,
    kb_passages,
    load_qa,
    to_jsonl_line,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "models" / "finetune" / "example"
MARKER = re.compile(r"\[(\d+)\]")

RESET = Passage("manual.pdf, page 4 - Password reset", "The reset link expires after 30 minutes.")
PORTS = Passage("manual.pdf, page 8 - LAN sync", "LAN sync uses UDP port 47310 and TCP port 47311.")
PLANS = Passage("plans.csv", "plan: Free; storage: 5 GB total; devices_per_user: 2")
REFUND = Passage("refund-policy.html - Annual", "Annual plans are refunded within 30 days.")


def test_the_prompt_is_the_apps_prompt_for_the_shuffled_sources():
    messages = build_conversation(
        "How long is the link valid?",
        "It expires after 30 minutes [1].",
        [RESET],
        [PORTS, PLANS],
        random.Random(5),
    )
    system = messages[0].content
    shown = sources_in(system)
    order = [next(p for p in (RESET, PORTS, PLANS) if p.text == shown[n]) for n in sorted(shown)]
    expected = build_messages(
        default_system_prompt(),
        [Source(i, p.label, p.text) for i, p in enumerate(order, 1)],
        [],
        "How long is the link valid?",
    )
    assert messages[:-1] == expected
    assert messages[-1].role == "assistant"
    (number,) = MARKER.findall(messages[-1].content)
    assert shown[int(number)] == RESET.text
    assert messages[-1].content == f"It expires after 30 minutes [{number}]."


def test_sources_land_in_every_position_across_seeds():
    positions = set()
    for seed in range(30):
        messages = build_conversation(
            "Ports?", "UDP 47310 [1].", [PORTS], [RESET, PLANS, REFUND], random.Random(seed)
        )
        (number,) = MARKER.findall(messages[-1].content)
        assert sources_in(messages[0].content)[int(number)] == PORTS.text
        positions.add(int(number))
    assert positions == {1, 2, 3, 4}


def test_two_cited_passages_are_both_renumbered():
    messages = build_conversation(
        "Reset and ports?",
        "It expires after 30 minutes [1]. LAN sync uses UDP 47310 [2].",
        [RESET, PORTS],
        [PLANS],
        random.Random(1),
    )
    shown = sources_in(messages[0].content)
    first, second = (int(n) for n in MARKER.findall(messages[-1].content))
    assert shown[first] == RESET.text and shown[second] == PORTS.text


def test_a_refusal_shows_only_passages_without_the_answer_and_targets_the_refusal_text():
    messages = build_conversation(
        "How much is Enterprise?", None, [], [PLANS, REFUND], random.Random(0)
    )
    assert messages[-1].content == NOT_FOUND_TEXT
    assert set(sources_in(messages[0].content).values()) == {PLANS.text, REFUND.text}


@pytest.mark.parametrize(
    ("answer", "relevant", "distractors", "message"),
    [
        ("No marker here.", [RESET], [], "cites no source"),
        ("Two [2].", [RESET], [PORTS], "cites [2] but has 1 passage"),
        (None, [RESET], [PORTS], "cannot have passages that answer it"),
        (None, [], [], "needs sources that don't answer it"),
    ],
)
def test_inconsistent_items_are_refused(answer, relevant, distractors, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_conversation("Q?", answer, relevant, distractors, random.Random(0))


def test_find_passage_looks_in_text_then_label():
    assert find_passage([PLANS, RESET], "expires after  30\nminutes") == RESET
    assert find_passage([PLANS, PORTS], "LAN sync") == PORTS  # in PORTS' text
    assert find_passage([PLANS, REFUND], "Annual") == REFUND
    with pytest.raises(ValueError, match="no passage contains"):
        find_passage([PLANS], "Enterprise")


def test_build_dataset_is_deterministic_and_keeps_the_answer_out_of_distractors():
    items = [
        QAItem("How long is the link valid?", "30 minutes [1].", ("30 minutes",)),
        QAItem("Enterprise price?", None, (), ("plan: Free",)),
    ]
    pool = [RESET, PORTS, PLANS, REFUND]
    first = build_dataset(items, pool, seed=3, variants=3)
    assert first == build_dataset(items, pool, seed=3, variants=3)
    assert len(first) == 3 + 1
    assert len(sources_in(first[0][0].content)) == 1  # variant 0: the answer's passage only
    for conversation in first[:3]:
        shown = sources_in(conversation[0].content)
        assert sum("30 minutes" in text for text in shown.values()) == 1
    refusal = first[3]
    assert refusal[-1].content == NOT_FOUND_TEXT
    assert PLANS.text in sources_in(refusal[0].content).values()


@pytest.fixture(scope="module")
def kb_chunks(embedder):
    return kb_passages(
        REPO / "resources" / "sample-kb",
        embedder.count_tokens,
        ChunkingConfig(max_tokens=embedder.max_tokens),
    )


def test_the_shipped_dataset_is_what_its_source_and_script_generate(kb_chunks):
    # The same arguments as models/finetune/example/make_dataset.py.
    conversations = build_dataset(load_qa(EXAMPLE / "qa.json"), kb_chunks, seed=7, variants=2)
    regenerated = "".join(to_jsonl_line(c) + "\n" for c in conversations)
    assert regenerated == (EXAMPLE / "train.jsonl").read_text(encoding="utf-8")


def test_the_shipped_dataset_is_valid_and_cites_the_anchored_passages(kb_chunks):
    conversations = load_jsonl(EXAMPLE / "train.jsonl")
    items = load_qa(EXAMPLE / "qa.json")
    assert 40 <= len(conversations) <= 80
    refusals = [c for c in conversations if c.refusal]
    assert 8 <= len(refusals) < len(conversations) // 3
    by_question = {item.question: item for item in items}
    for conversation in conversations:
        item = by_question[conversation.messages[1].content]
        shown = sources_in(conversation.messages[0].content)
        labels = {
            int(n): label
            for n, label in re.findall(
                r"\n\[(\d+)\] ([^\n]*)\n", "\n" + conversation.messages[0].content
            )
        }
        assert 1 <= len(shown) <= 4 and labels.keys() == shown.keys()
        if item.answer is None:
            assert conversation.answer == NOT_FOUND_TEXT
            continue
        cited = [int(n) for n in MARKER.findall(conversation.answer)]
        assert cited and all(n in shown for n in cited)
        for k, anchor in enumerate(item.sources, 1):
            # The passage the author cited as [k] is the one now numbered as the answer says.
            number = cited[[int(n) for n in MARKER.findall(item.answer)].index(k)]
            needle = " ".join(anchor.split())
            assert needle in shown[number] or needle in labels[number]
