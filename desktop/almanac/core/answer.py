"""Grounded answers: retrieve, prompt with numbered sources, generate, map [n] back to passages.

Honesty comes first: when retrieval finds nothing above the relevance floor the model is not asked
to guess; without a model, the answer is the best passages themselves, cited.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from almanac.core.citations import drop_invalid_markers, marker_numbers
from almanac.core.embedding import Embedder
from almanac.core.grounding import unsupported_sentences
from almanac.core.llm.base import ChatMessage, Engine, GenerationConfig, ModelError
from almanac.core.prompting import Source, build_messages, default_system_prompt, source_label
from almanac.core.records import (
    Answer,
    AnswerMode,
    Citation,
    Hit,
    SearchFilters,
    SearchResult,
)
from almanac.core.retrieval import Searcher

NOT_FOUND_TEXT = "I couldn't find that in your documents."
GENERAL_PREFIX = "Not from your documents (general knowledge):"
NO_MODEL_HINT = (
    "No language model is configured: add a GGUF model (almanac ask --model FILE.gguf, or "
    "Settings > Model) to get written answers."
)
_REFUSAL = re.compile(r"couldn.?t find (?:that|this|it|anything)[^.]*in your documents", re.I)
# Short follow-ups lean on the previous question: "and on Windows?", "what about refunds?"
_FOLLOW_UP = re.compile(
    r"^(?:and|or|but|also|what about|how about|same|then|so|it|its|that|this|those|they|there)\b",
    re.I,
)

TokenCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AnswerConfig:
    sources: int = 5
    max_tokens: int = 512
    temperature: float = 0.2
    allow_general_knowledge: bool = False
    grounding_similarity: float = 0.5


def retrieval_query(question: str, history: Sequence[ChatMessage]) -> str:
    """The text to search with: a short or elliptical follow-up carries the previous question."""
    previous = next((m.content for m in reversed(history) if m.role == "user"), None)
    question = question.strip()
    if previous is None:
        return question
    if len(question.split()) <= 6 or _FOLLOW_UP.match(question):
        return f"{previous.strip()} {question}"
    return question


class AnswerService:
    """Owns no model: the engine belongs to the worker that calls ``answer``."""

    def __init__(
        self,
        searcher: Searcher,
        embedder: Embedder,
        engine: Engine | None = None,
        *,
        system_prompt: str | None = None,
        config: AnswerConfig | None = None,
        source_root: str | None = None,
    ) -> None:
        self.searcher = searcher
        self.embedder = embedder
        self.engine = engine
        self.system_prompt = system_prompt or default_system_prompt()
        self.config = config or AnswerConfig()
        self.source_root = source_root

    def answer(
        self,
        question: str,
        history: Sequence[ChatMessage] = (),
        *,
        on_token: TokenCallback | None = None,
        stop: threading.Event | None = None,
        filters: SearchFilters | None = None,
    ) -> Answer:
        started = time.perf_counter()
        question = question.strip()
        if not question:
            raise ValueError("empty question")
        query = retrieval_query(question, history)
        result = self.searcher.search(query, self.config.sources, filters)
        if not result.relevant:
            if self.engine is not None and self.config.allow_general_knowledge:
                return self._general(question, history, query, on_token, stop, started)
            return self._fixed(
                question, query, NOT_FOUND_TEXT, AnswerMode.NOT_FOUND, (), started, on_token
            )
        hits = result.hits
        if self.engine is None:
            return self._sources_only(question, query, hits, started, on_token)
        return self._generate(question, history, query, result, on_token, stop, started)

    # -- the modes ----------------------------------------------------------------------------

    def _generate(
        self,
        question: str,
        history: Sequence[ChatMessage],
        query: str,
        result: SearchResult,
        on_token: TokenCallback | None,
        stop: threading.Event | None,
        started: float,
    ) -> Answer:
        assert self.engine is not None
        sources = [self._source(i, hit) for i, hit in enumerate(result.hits, 1)]
        messages, shown = self._fit(sources, list(history), question)
        used = {s.number for s in shown}
        text, first_token, tokens, stopped = self._stream(messages, on_token, stop, started)
        citations_all = {i: _citation(i, hit) for i, hit in enumerate(result.hits, 1) if i in used}
        text, invalid = drop_invalid_markers(text, set(citations_all))
        text = text.strip()
        cited = [n for n in marker_numbers(text) if n in citations_all]
        citations = tuple(citations_all[n] for n in sorted(cited))
        also = tuple(c for n, c in sorted(citations_all.items()) if n not in cited)
        refused = bool(_REFUSAL.search(text)) and not cited
        if refused:
            unsupported: list[str] = []
        else:
            unsupported = unsupported_sentences(
                text,
                {n: c.text for n, c in citations_all.items()},
                self.embedder,
                similarity=self.config.grounding_similarity,
                exempt=(NOT_FOUND_TEXT,),
            )
        return Answer(
            question=question,
            text=text,
            mode=AnswerMode.NOT_FOUND if refused else AnswerMode.MODEL,
            citations=citations,
            also_retrieved=also,
            grounded=not unsupported and (refused or bool(citations)),
            unsupported_sentences=tuple(unsupported),
            invalid_markers=invalid,
            stopped=stopped,
            retrieval_query=query,
            seconds_to_first_token=first_token,
            seconds_total=time.perf_counter() - started,
            tokens_generated=tokens,
        )

    def _general(
        self,
        question: str,
        history: Sequence[ChatMessage],
        query: str,
        on_token: TokenCallback | None,
        stop: threading.Event | None,
        started: float,
    ) -> Answer:
        system = (
            "You are a support assistant. The user's documents contain nothing about this "
            "question. Answer briefly from general knowledge and say that it is not from "
            "their documents."
        )
        messages = [ChatMessage("system", system), *history, ChatMessage("user", question)]
        if on_token:
            on_token(GENERAL_PREFIX + " ")
        text, first_token, tokens, stopped = self._stream(messages, on_token, stop, started)
        return Answer(
            question=question,
            text=f"{GENERAL_PREFIX} {text.strip()}",
            mode=AnswerMode.GENERAL,
            citations=(),
            also_retrieved=(),
            grounded=False,
            stopped=stopped,
            retrieval_query=query,
            seconds_to_first_token=first_token,
            seconds_total=time.perf_counter() - started,
            tokens_generated=tokens,
        )

    def _sources_only(
        self,
        question: str,
        query: str,
        hits: Sequence[Hit],
        started: float,
        on_token: TokenCallback | None,
    ) -> Answer:
        lines = ["Here are the most relevant passages from your documents:", ""]
        for i, hit in enumerate(hits, 1):
            snippet = " ".join(hit.text.split())
            if len(snippet) > 400:
                snippet = snippet[:400].rsplit(" ", 1)[0] + " ..."
            lines.append(f"[{i}] {self._label(hit)}: {snippet}")
        lines += ["", NO_MODEL_HINT]
        citations = tuple(_citation(i, hit) for i, hit in enumerate(hits, 1))
        return self._fixed(
            question, query, "\n".join(lines), AnswerMode.SOURCES_ONLY, citations, started, on_token
        )

    def _fixed(
        self,
        question: str,
        query: str,
        text: str,
        mode: AnswerMode,
        citations: tuple[Citation, ...],
        started: float,
        on_token: TokenCallback | None,
    ) -> Answer:
        if on_token:
            on_token(text)
        return Answer(
            question=question,
            text=text,
            mode=mode,
            citations=citations,
            also_retrieved=(),
            grounded=mode is not AnswerMode.GENERAL,
            retrieval_query=query,
            seconds_total=time.perf_counter() - started,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _stream(
        self,
        messages: list[ChatMessage],
        on_token: TokenCallback | None,
        stop: threading.Event | None,
        started: float,
    ) -> tuple[str, float | None, int, bool]:
        assert self.engine is not None
        gen = GenerationConfig(
            max_tokens=self.config.max_tokens, temperature=self.config.temperature
        )
        pieces: list[str] = []
        first: float | None = None
        for piece in self.engine.stream_chat(messages, gen, stop):
            if first is None:
                first = time.perf_counter() - started
            pieces.append(piece)
            if on_token:
                on_token(piece)
        stopped = stop is not None and stop.is_set()
        return "".join(pieces), first, len(pieces), stopped

    def _fit(
        self, sources: list[Source], history: list[ChatMessage], question: str
    ) -> tuple[list[ChatMessage], list[Source]]:
        """Everything must fit the context with room for the answer: drop the oldest turns first,
        then the least relevant sources, then shorten the last source."""
        assert self.engine is not None
        budget = self.engine.info.n_ctx - self.config.max_tokens
        if budget <= 0:
            raise ModelError(
                f"context size {self.engine.info.n_ctx} leaves no room for a "
                f"{self.config.max_tokens}-token answer"
            )
        while True:
            messages = build_messages(self.system_prompt, sources, history, question)
            if self.engine.count_tokens(messages) <= budget:
                return messages, sources
            if history:
                history = history[2:] if len(history) >= 2 else []
            elif len(sources) > 1:
                sources = sources[:-1]
            elif sources and len(sources[0].text) > 200:
                s = sources[0]
                sources = [Source(s.number, s.label, s.text[: len(s.text) // 2])]
            else:
                n_ctx = self.engine.info.n_ctx
                raise ModelError(f"the question is too long for the model's {n_ctx}-token context")

    def _source(self, number: int, hit: Hit) -> Source:
        return Source(number, self._label(hit), hit.text)

    def _label(self, hit: Hit) -> str:
        return source_label(hit.path, hit.page, hit.heading, self.source_root)


def _citation(number: int, hit: Hit) -> Citation:
    return Citation(
        number=number,
        path=hit.path,
        page=hit.page,
        start=hit.start,
        end=hit.end,
        heading=hit.heading,
        score=hit.score,
        text=hit.text,
    )
