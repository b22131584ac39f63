"""Fakes that stand in for a real component where the component is not what a test is about.

Type-checked against the protocols they imitate (``mypy`` runs on this file, see pyproject.toml):
when ``Engine`` or the model worker's ``Answerer`` changes, a fake that no longer fits fails the
type check instead of passing tests that no longer test anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from almanac.core.llm.base import ChatMessage, Engine, EngineInfo, GenerationConfig
from almanac.core.records import Answer, AnswerMode, Citation, SearchFilters

if TYPE_CHECKING:
    from almanac.ui.workers import Answerer


class FakeEngine:
    """Records the thread of every call: the engine must live on exactly one worker thread."""

    def __init__(self, pieces: Sequence[str], delay: float = 0.0) -> None:
        self.pieces = list(pieces)
        self.delay = delay
        self.threads: dict[str, set[int]] = {"init": {threading.get_ident()}}
        self.closed = False

    def _record(self, what: str) -> None:
        self.threads.setdefault(what, set()).add(threading.get_ident())

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(backend="fake", model="fake.gguf", n_ctx=2048, chat_template="gguf")

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self._record("count")
        return 10

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        config: GenerationConfig,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        self._record("stream")
        for piece in self.pieces:
            if stop is not None and stop.is_set():
                return
            if self.delay:
                time.sleep(self.delay)  # simulated work per token, not a barrier
            yield piece

    def close(self) -> None:
        self._record("close")
        self.closed = True

    def all_threads(self) -> set[int]:
        return set().union(*self.threads.values())


class FakeService:
    """Stands in for AnswerService (no index needed): streams the engine's pieces."""

    def __init__(self, engine: Engine | None) -> None:
        assert engine is not None
        self.engine = engine

    def answer(
        self,
        question: str,
        history: Sequence[ChatMessage] = (),
        *,
        on_token: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        filters: SearchFilters | None = None,
    ) -> Answer:
        pieces = []
        for piece in self.engine.stream_chat(
            [ChatMessage("user", question)], GenerationConfig(), stop
        ):
            pieces.append(piece)
            if on_token:
                on_token(piece)
        return Answer(
            question=question,
            text="".join(pieces),
            mode=AnswerMode.MODEL,
            citations=(),
            also_retrieved=(),
            grounded=False,
            stopped=stop is not None and stop.is_set(),
            tokens_generated=len(pieces),
        )


class ScriptedEngine:
    """Replies with a fixed text, one word per token up to max_tokens; records what it was asked.
    ``stop_after``: sets the stop event itself after that many tokens (a user pressing Stop)."""

    def __init__(self, reply: str, n_ctx: int = 4096, stop_after: int | None = None) -> None:
        self.reply = reply
        self.calls: list[list[ChatMessage]] = []
        self.configs: list[GenerationConfig] = []
        self.stop_after = stop_after
        self._info = EngineInfo("scripted", "scripted", n_ctx, "none")

    @property
    def info(self) -> EngineInfo:
        return self._info

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content) // 4 + 4 for m in messages)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        config: GenerationConfig,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        self.configs.append(config)
        for i, word in enumerate(self.reply.split(" ")[: config.max_tokens]):
            if stop is not None and stop.is_set():
                return
            yield word if i == 0 else " " + word
            if self.stop_after is not None and i + 1 == self.stop_after and stop is not None:
                stop.set()

    def close(self) -> None:
        pass


if TYPE_CHECKING:
    # The conformance checks: each fake must be usable wherever the real thing is expected.
    _fake_engine: Engine = FakeEngine([])
    _scripted_engine: Engine = ScriptedEngine("")
    _fake_service: Answerer = FakeService(None)
    _service_factory: Callable[[Engine | None], Answerer] = FakeService


def make_answer(question: str = "How do I reset my password?") -> Answer:
    """A model answer with two citations, an uncited passage, an unsupported sentence and a
    stop: every part a stored or exported answer must keep."""
    return Answer(
        question=question,
        text="Open Settings > Account and choose Reset [1]. It takes a minute [2].",
        mode=AnswerMode.MODEL,
        citations=(
            Citation(1, "/kb/manual.pdf", 4, 10, 120, "Signing in > Password reset", 0.812345, "a"),
            Citation(2, "/kb/faq.md", None, 0, 50, "", 0.5, "Resets take about a minute."),
        ),
        also_retrieved=(Citation(3, "/kb/other.txt", None, 5, 9, "Misc", 0.3, "misc <b>"),),
        grounded=False,
        unsupported_sentences=("It takes a minute.",),
        invalid_markers=(7,),
        stopped=True,
        retrieval_query="reset password",
        seconds_to_first_token=0.25,
        seconds_total=1.5,
    )
