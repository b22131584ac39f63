"""Stop before the first token, with real llama.cpp and the tiny GGUF: a stop requested while the
prompt is being evaluated ends generation after the slice in flight, not after the whole prompt.
Event-based: the stop is set from inside the first evaluation call, never after a delay."""

from __future__ import annotations

import threading
from pathlib import Path

from almanac.core.llm.base import ChatMessage, GenerationConfig
from almanac.core.llm.llama_engine import LlamaCppEngine


def _long_prompt() -> list[ChatMessage]:
    sources = "\n".join(
        f"[{i}] The relay on shelf {i} restarts after {i % 9 + 1} minutes when the link drops."
        for i in range(60)
    )
    return [
        ChatMessage("system", "Answer from the sources and cite them as [n]."),
        ChatMessage("user", f"Sources:\n{sources}\n\nQuestion: when does the relay restart?"),
    ]


def test_stop_during_prompt_evaluation_ends_generation(tiny_gguf: Path) -> None:
    engine = LlamaCppEngine(tiny_gguf, n_ctx=2048)
    try:
        messages = _long_prompt()
        config = GenerationConfig(max_tokens=40, temperature=0.0)
        prompt_tokens = engine.count_tokens(messages)
        stop = threading.Event()
        evaluated: list[int] = []
        real_eval = engine._llm.eval

        def eval_then_press_stop(tokens: list[int]) -> None:
            evaluated.append(len(tokens))
            real_eval(tokens)
            stop.set()  # the user presses Stop while the prompt is being evaluated

        engine._llm.eval = eval_then_press_stop
        pieces = list(engine.stream_chat(messages, config, stop))
        assert pieces == []
        assert len(evaluated) == 1, evaluated  # nothing after the slice in flight
        assert evaluated[0] < prompt_tokens / 4, (evaluated, prompt_tokens)

        # The engine is still usable, and the next answer resumes from what was evaluated.
        engine._llm.eval = real_eval
        again = "".join(engine.stream_chat(messages, config, threading.Event()))
        assert again.strip()
    finally:
        engine.close()


def test_a_stop_set_before_the_call_evaluates_nothing(tiny_gguf: Path) -> None:
    engine = LlamaCppEngine(tiny_gguf, n_ctx=2048)
    try:
        stop = threading.Event()
        stop.set()
        evaluated: list[int] = []
        real_eval = engine._llm.eval
        engine._llm.eval = lambda tokens: (evaluated.append(len(tokens)), real_eval(tokens))
        assert list(engine.stream_chat(_long_prompt(), GenerationConfig(), stop)) == []
        assert evaluated == []
    finally:
        engine.close()
