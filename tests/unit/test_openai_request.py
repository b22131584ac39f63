"""What the OpenAI-compatible engine sends and how it ends an answer at a stop text."""

from __future__ import annotations

from almanac.core.llm.base import ChatMessage, GenerationConfig
from almanac.core.llm.openai_engine import cut_at_stops, request_body

MESSAGES = [ChatMessage("user", "How do I reset my password?")]


def test_the_request_carries_the_answer_policy_settings() -> None:
    config = GenerationConfig(max_tokens=160, repeat_penalty=1.1, stop=("\n\nQuestion:",), seed=4)
    body = request_body(MESSAGES, config, "tiny")
    assert body["max_tokens"] == 160 and body["seed"] == 4 and body["model"] == "tiny"
    assert body["repeat_penalty"] == 1.1
    assert body["stop"] == ["\n\nQuestion:"]
    assert body["messages"] == [{"role": "user", "content": "How do I reset my password?"}]


def test_defaults_send_no_extensions() -> None:
    body = request_body(MESSAGES, GenerationConfig(), None)
    assert "repeat_penalty" not in body and "stop" not in body and "model" not in body


def test_more_stop_texts_than_servers_take_are_cut_to_four() -> None:
    stops = tuple(f"<{i}>" for i in range(6))
    assert request_body(MESSAGES, GenerationConfig(stop=stops), None)["stop"] == list(stops[:4])


def test_a_stop_text_split_across_pieces_ends_the_answer() -> None:
    pieces = ["Open Settings", " and tap Reset.<|e", "nd|> and then more", " text"]
    out = list(cut_at_stops(iter(pieces), ["<|end|>"]))
    assert "".join(out) == "Open Settings and tap Reset."


def test_the_earliest_stop_wins_and_text_without_a_stop_passes_whole() -> None:
    out = "".join(cut_at_stops(iter(["a STOP b END c"]), ["END", "STOP"]))
    assert out == "a "
    pieces = ["no ", "stop ", "here"]
    assert "".join(cut_at_stops(iter(pieces), ["<|end|>"])) == "no stop here"
    assert list(cut_at_stops(iter(pieces), [])) == pieces
