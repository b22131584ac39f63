"""Training data checks name the file and line of every problem; the held-out split is stable."""

from __future__ import annotations

import json

import pytest

from almanac.core.answering.answer import NOT_FOUND_TEXT
from almanac.core.llm.base import ChatMessage
from almanac.finetune.data import (
    Conversation,
    check_lengths,
    load_jsonl,
    split_heldout,
    stats,
    write_jsonl,
)
from almanac.finetune.errors import DataError


def line(*turns, system="You are a support assistant.\n\nSources: (none)"):
    messages = [{"role": "system", "content": system}] if system else []
    roles = ["user", "assistant"] * len(turns)
    messages += [{"role": r, "content": c} for r, c in zip(roles, turns, strict=False)]
    return json.dumps({"messages": messages})


def write(tmp_path, *lines, name="train.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def problems(path):
    with pytest.raises(DataError) as info:
        load_jsonl(path)
    return info.value.problems


def test_valid_conversations_load_in_order_and_blank_lines_are_skipped(tmp_path):
    path = write(
        tmp_path,
        line("How long is the link valid?", "30 minutes [1]."),
        "",
        line("And on Linux?", "Run sudo apt remove northwind-sync [2]."),
    )
    conversations = load_jsonl(path)
    assert [c.line for c in conversations] == [1, 3]
    assert conversations[0].messages[0].role == "system"
    assert conversations[1].answer == "Run sudo apt remove northwind-sync [2]."


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"messages": [', "line 2: not valid JSON"),
        ("[1, 2]", 'line 2: expected a JSON object with a "messages" list'),
        ('{"conversation": []}', 'line 2: expected a JSON object with a "messages" list'),
        ('{"messages": []}', 'line 2: "messages" must be a non-empty list'),
        ('{"messages": ["hi"]}', "line 2: messages[0] must be an object with role and content"),
        (
            '{"messages": [{"role": "bot", "content": "x"}]}',
            "line 2: messages[0].role must be system, user or assistant, not 'bot'",
        ),
        ('{"messages": [{"role": "user", "content": 5}]}', "messages[0].content must be a string"),
        (line("Question?", "   "), "line 2: messages[2] (assistant) is empty"),
        (line("Question?"), "line 2: the last turn must be the assistant's answer"),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "Hi"}]}),
            "line 2: messages[0]: expected a user turn, got assistant",
        ),
        (
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "Q"},
                        {"role": "system", "content": "S"},
                        {"role": "assistant", "content": "A"},
                    ]
                }
            ),
            "line 2: messages[1]: a system turn may only come first",
        ),
    ],
)
def test_each_problem_names_its_line(tmp_path, bad, message):
    path = write(tmp_path, line("Fine?", "Yes [1]."), bad)
    found = problems(path)
    assert len(found) == 1
    assert found[0].startswith("train.jsonl line 2: ")
    assert message in found[0]


def test_duplicates_name_the_first_line_even_with_different_whitespace(tmp_path):
    path = write(
        tmp_path,
        line("How long is the link valid?", "30 minutes [1]."),
        line("Other?", "Other [1]."),
        line("How long is  the link valid?", "30 minutes\n[1]."),
    )
    assert problems(path) == ["train.jsonl line 3: duplicate of line 1"]


def test_all_problems_are_reported_at_once_with_a_one_line_summary(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"messages": 1}\n\xff\xfe\n' + line("Q?", "A [1].").encode() + b"\n{\n")
    with pytest.raises(DataError) as info:
        load_jsonl(path)
    assert [p.split(":")[0] for p in info.value.problems] == [
        "train.jsonl line 1",
        "train.jsonl line 2",
        "train.jsonl line 4",
    ]
    assert "not UTF-8" in info.value.problems[1]
    first = str(info.value).splitlines()[0]
    assert first.startswith("train.jsonl line 1: ") and first.endswith("(and 2 more problems)")


def test_missing_and_empty_files(tmp_path):
    assert problems(tmp_path / "nope.jsonl")[0].startswith("training data not found")
    assert problems(write(tmp_path, "", "  ")) == ["train.jsonl: no conversations"]


def test_too_long_conversations_name_their_line_and_the_limit(tmp_path):
    path = write(tmp_path, *(line(f"Q{i}?", "A [1].") for i in range(3)))
    conversations = load_jsonl(path)
    sizes = {1: 100, 2: 3000, 3: 1600}

    def count(c):
        return sizes[c.line]

    assert check_lengths(conversations, path, count, 4000, 4096) == [100, 3000, 1600]
    with pytest.raises(DataError) as info:
        check_lengths(conversations, path, count, 1000, 2048)
    assert info.value.problems == [
        "train.jsonl line 2: 3000 tokens, more than the base model's context of 2048",
        "train.jsonl line 3: 1600 tokens, more than [train].max_length 1000 "
        "(raise it in the recipe, or use fewer or shorter sources)",
    ]


def conversations_for_split(n, refusals):
    return [
        Conversation(
            i + 1,
            (
                ChatMessage("user", f"Question {i}?"),
                ChatMessage("assistant", NOT_FOUND_TEXT if i < refusals else f"Answer {i} [1]."),
            ),
        )
        for i in range(n)
    ]


def test_heldout_split_is_deterministic_proportional_and_independent_of_order():
    conversations = conversations_for_split(60, refusals=10)
    train, held = split_heldout(conversations, 0.1, 50, seed=3)
    assert len(held) == 6 and len(train) == 54
    assert {c.line for c in train} | {c.line for c in held} == set(range(1, 61))
    assert sum(c.refusal for c in held) == 1  # refusals held out in proportion
    _, again_held = split_heldout(list(reversed(conversations)), 0.1, 50, seed=3)
    assert {c.line for c in again_held} == {c.line for c in held}
    assert [c.line for c in train] == sorted(c.line for c in train)  # file order kept
    _, other = split_heldout(conversations, 0.1, 50, seed=4)
    assert {c.line for c in other} != {c.line for c in held}
    _, capped = split_heldout(conversations, 0.5, 5, seed=3)
    assert len(capped) == 5


def test_no_heldout_for_tiny_sets_or_a_zero_fraction():
    assert split_heldout(conversations_for_split(3, 0), 0.5, 50, seed=0)[1] == []
    assert split_heldout(conversations_for_split(30, 5), 0.0, 50, seed=0)[1] == []


def test_stats_and_round_trip(tmp_path):
    conversations = conversations_for_split(4, refusals=1)
    summary = stats(conversations, [10, 20, 30, 40]).to_json()
    assert summary == {
        "conversations": 4,
        "refusals": 1,
        "assistant_turns": 4,
        "tokens_mean": 25.0,
        "tokens_max": 40,
    }
    write_jsonl(tmp_path / "out" / "x.jsonl", conversations)
    again = load_jsonl(tmp_path / "out" / "x.jsonl")
    assert [c.messages for c in again] == [c.messages for c in conversations]
