"""Grounded answers: retrieve, prompt with numbered sources, generate, map [n] back to passages.

Honesty comes first: when retrieval finds nothing above the relevance floor the model is not asked
to guess; without a model, the answer is the best passages themselves, cited. The policy for
small models lives here, once, for the desktop chat, ``ask``, ``ask --jsonl`` and ``eval``:

- generation ends at the end of the answer (end-of-turn token, a new "Sources:" block or turn),
  with a mild repeat penalty, a length suited to the question, and a loop cut while streaming;
- text reaches the user a sentence at a time, and only once a sentence is supported by a source
  it cites: an answer with no supported sentence (or no citation at all) is withheld, the user
  gets the refusal and the best passages, and the model's text is kept in
  ``Answer.unsupported_text`` for whoever asks to see it;
- a sentence that the best-ranked passage supports but that cites another one is re-pointed
  to that passage before anyone sees it (one citing nothing stays unsupported), and a sentence
  that repeats a word of the question which no document contains is unsupported (see
  ``grounding``);
- a question naming a code that no document contains ("What does error E-1042 mean?") is
  refused before the model is asked, saying which code is missing;
- a question is merged with the previous one only when retrieval shows it is a follow-up.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from almanac.core.answering.citations import (
    drop_invalid_markers,
    marker_numbers,
    split_sentences,
    strip_markers,
)
from almanac.core.answering.grounding import (
    SupportChecker,
    content_words,
    is_claim,
    unsupported_sentences,
)
from almanac.core.answering.prompting import (
    Neutralizer,
    Source,
    answered_turns,
    build_messages,
    default_system_prompt,
    source_label,
)
from almanac.core.llm.base import ChatMessage, Engine, GenerationConfig, ModelError
from almanac.core.records import (
    Answer,
    AnswerMode,
    Citation,
    Hit,
    SearchFilters,
    SearchResult,
)

if TYPE_CHECKING:
    # The settings import this module (AnswerConfig): numpy, the embedder and the store load
    # with the services, not with it.
    from almanac.core.embedding.embedding import Embedder
    from almanac.core.retrieval.retrieval import Searcher

NOT_FOUND_TEXT = "I couldn't find that in your documents."
GENERAL_PREFIX = "Not from your documents (general knowledge):"
NO_MODEL_HINT = (
    "No language model is configured: add a GGUF model (almanac ask --model FILE.gguf, or "
    "Settings > Model) to get written answers."
)
PASSAGES_INTRO = "Here are the most relevant passages from your documents:"
WITHHELD_NOTE = (
    "The model's answer was not supported by these passages, so it is not shown "
    "(ask to see it: it is labelled as unsupported)."
)
_REFUSAL = re.compile(r"couldn.?t find (?:that|this|it|anything)[^.]*in your documents", re.I)

# What a model writes when it goes on past its answer: the sources again (the app lists them), or
# the next turn of a conversation it imagines. The end-of-turn token itself needs no stop string
# (the engine stops on it).
STOP_STRINGS = (
    "\nSources:",
    "\nSource:",
    "\n**Sources",
    "\nReferences:",
    "\nQuestion:",
    "\nUser:",
    "\nuser:",
    "<|im_start|>",
    "<|im_end|>",
)
# Questions that ask for a procedure or an explanation get the whole cap; the rest (a fact, a
# yes/no, a number) an answer of a sentence or two: with citations, a direct answer and one
# sentence of context, the sample KB's reference answers are 20-70 tokens.
_PROCEDURAL = re.compile(
    r"\b(?:how (?:do|can|should|to|does)|steps?|install|set ?up|configure|troubleshoot|fix|"
    r"explain|why|list|compare|difference|walk me|guide|migrat\w*|procedure)\b",
    re.I,
)
SHORT_ANSWER_TOKENS = 160

TokenCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AnswerConfig:
    sources: int = 5
    # A cap: each question gets ``answer_token_limit`` of it. 320 tokens is a procedure of six to
    # eight steps with citations; a support answer longer than that is a run-on, and every token
    # over costs the user ~10-20 ms on a 2-core laptop and leaves less context for sources.
    max_tokens: int = 320
    temperature: float = 0.2
    # llama.cpp's penalty covers the answer's own last 64 tokens, not the prompt: copying "30
    # minutes" from a source is unaffected, while the loops small models fall into are damped.
    # 1.1 is the common setting; above ~1.2 small models start to avoid repeating the question's
    # own product names and their [n] markers.
    repeat_penalty: float = 1.1
    # The model's own refusal needs this much of its probability on the refusal's first token
    # ("more likely than not"); below it, the model answers and the grounding check decides
    # (withheld when unsupported). On the default model's 20 held-out training conversations the
    # refusal's probability is 0.23-0.60 where refusing is right and 0.05-0.55 where answering is:
    # the 135M model barely tells them apart, so the grounding check carries the decision. 0: off.
    refusal_confidence: float = 0.5
    allow_general_knowledge: bool = False
    grounding_similarity: float = 0.5
    # Follow-ups (see ``choose_query``).
    standalone_similarity: float = 0.40  # a question whose best passage is this close stands alone
    merge_gain: float = 0.10  # the merged query's best passage must be this much closer
    related_similarity: float = 0.15  # ... and be about this question too, not only the last one


def answer_token_limit(question: str, cap: int) -> int:
    """The answer length for ``question``: the whole cap for procedures and explanations,
    ``SHORT_ANSWER_TOKENS`` for the rest (never more than the cap)."""
    if _PROCEDURAL.search(question):
        return cap
    return min(cap, SHORT_ANSWER_TOKENS)


def previous_question(history: Sequence[ChatMessage]) -> str | None:
    return next((m.content.strip() for m in reversed(history) if m.role == "user"), None)


def retrieval_query(question: str, history: Sequence[ChatMessage]) -> str:
    """The merged form of a follow-up: the previous question, then this one. Whether to use it
    is ``AnswerService.choose_query``'s decision, made from what each form retrieves."""
    previous = previous_question(history)
    question = question.strip()
    return question if previous is None else f"{previous} {question}"


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
        # Untrusted text is defused against the loaded model's own special tokens as well as the
        # static template markers (an engine that knows none gets the static ones only).
        special = getattr(engine, "special_tokens", None)
        self.neutralizer = Neutralizer(special if isinstance(special, frozenset) else ())

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
        query, result = self.choose_query(question, history, filters)
        if not result.relevant:
            if self.engine is not None and self.config.allow_general_knowledge:
                return self._general(question, history, query, on_token, stop, started)
            return self._fixed(
                question, query, NOT_FOUND_TEXT, AnswerMode.NOT_FOUND, (), started, on_token
            )
        hits = result.hits
        if self.engine is None:
            return self._sources_only(question, query, hits, started, on_token)
        unknown = self.searcher.absent_codes(question)
        if unknown:
            # "What does error E-1042 mean?" with no E-1042 in any document: the passages found
            # are about other codes, and a small model explains one of them as if it were E-1042.
            lead = f"{NOT_FOUND_TEXT} No document mentions {_listed(unknown)}."
            numbers = range(1, len(hits) + 1)
            return self._fixed(
                question,
                query,
                _refusal_with_passages(lead, hits, numbers, self._label),
                AnswerMode.NOT_FOUND,
                tuple(_citation(i, hit) for i, hit in enumerate(hits, 1)),
                started,
                on_token,
            )
        return self._generate(question, history, query, result, on_token, stop, started)

    def choose_query(
        self,
        question: str,
        history: Sequence[ChatMessage] = (),
        filters: SearchFilters | None = None,
    ) -> tuple[str, SearchResult]:
        """Search the question alone; merge it with the previous question only when retrieval
        says it is a follow-up: the question alone finds nothing close (below
        ``standalone_similarity``), the merged query finds passages clearly closer (by
        ``merge_gain``), and those passages are about this question too (cosine to the question
        alone of at least ``related_similarity``). The last test is what keeps "Who won the 2018
        World Cup?" after a password question from retrieving password passages: the merged
        query's passages are the previous question's, unrelated to this one."""
        cfg = self.config
        question = question.strip()
        alone = self.searcher.search(question, cfg.sources, filters)
        previous = previous_question(history)
        strong = alone.relevant and (alone.best_similarity or 0.0) >= cfg.standalone_similarity
        if previous is None or strong:
            return question, alone
        merged_query = retrieval_query(question, history)
        merged = self.searcher.search(merged_query, cfg.sources, filters)
        if not merged.relevant or not merged.hits:
            return question, alone
        gain = (merged.best_similarity or 0.0) - (alone.best_similarity or 0.0)
        if gain < cfg.merge_gain:
            return question, alone
        top = merged.hits[:3]
        vectors = self.embedder.embed([question] + [h.text for h in top])
        import numpy as np

        related = max(float(np.dot(vectors[0], v)) for v in vectors[1:])
        if related < cfg.related_similarity:
            return question, alone
        return merged_query, merged

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
        max_tokens = answer_token_limit(question, self.config.max_tokens)
        sources = [self._source(i, hit) for i, hit in enumerate(result.hits, 1)]
        messages, shown = self._fit(sources, answered_turns(history), question, max_tokens)
        used = {s.number for s in shown}
        citations_all = {i: _citation(i, hit) for i, hit in enumerate(result.hits, 1) if i in used}
        checker = SupportChecker(
            {n: c.text for n, c in citations_all.items()},
            self.embedder,
            similarity=self.config.grounding_similarity,
            absent_terms=self.searcher.absent_words(content_words(question)),
        )
        streamer = AnswerStream(checker, on_token)
        first_token, tokens, stopped, looped = self._stream(
            messages, streamer, stop, started, max_tokens, guard_refusal=True
        )
        raw = streamer.final_text(run_on=tokens >= max_tokens and not stopped)
        text, invalid = drop_invalid_markers(raw, set(citations_all))
        text = streamer.repointed(text).strip()
        cited = [n for n in marker_numbers(text) if n in citations_all]
        citations = tuple(citations_all[n] for n in sorted(cited))
        also = tuple(c for n, c in sorted(citations_all.items()) if n not in cited)
        refused = bool(_REFUSAL.search(text)) and not cited
        unsupported: list[str] = []
        if not refused:
            unsupported = unsupported_sentences(
                text, checker.passages, self.embedder, exempt=(NOT_FOUND_TEXT,), checker=checker
            )
        if not refused and _withhold(text, cited, unsupported):
            # Nothing in it rests on a passage it cites: the user gets the refusal and the
            # passages the model was shown; the model's text only on request, labelled.
            shown_hits = [result.hits[n - 1] for n in sorted(used)]
            refusal = _refusal_with_passages(NOT_FOUND_TEXT, shown_hits, sorted(used), self._label)
            streamer.emit_replacement(refusal)
            return Answer(
                question=question,
                text=refusal,
                mode=AnswerMode.NOT_FOUND,
                citations=tuple(citations_all[n] for n in sorted(used)),
                also_retrieved=(),
                grounded=True,
                invalid_markers=invalid,
                stopped=stopped,
                retrieval_query=query,
                seconds_to_first_token=first_token,
                seconds_total=time.perf_counter() - started,
                tokens_generated=tokens,
                unsupported_text=text,
                loop_cut=looped,
            )
        streamer.emit_rest(raw)
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
            loop_cut=looped,
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
        clean = self.neutralizer
        messages = [
            ChatMessage("system", system),
            *[ChatMessage(m.role, clean(m.content)) for m in answered_turns(history)],
            ChatMessage("user", clean(question)),
        ]
        if on_token:
            on_token(GENERAL_PREFIX + " ")
        max_tokens = answer_token_limit(question, self.config.max_tokens)
        # Labelled as general knowledge, not grounded: streamed as it comes, loops still cut.
        streamer = AnswerStream(None, on_token)
        first_token, tokens, stopped, looped = self._stream(
            messages, streamer, stop, started, max_tokens
        )
        text = streamer.final_text(run_on=tokens >= max_tokens and not stopped)
        streamer.emit_rest(text)
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
            loop_cut=looped,
        )

    def _sources_only(
        self,
        question: str,
        query: str,
        hits: Sequence[Hit],
        started: float,
        on_token: TokenCallback | None,
    ) -> Answer:
        numbers = list(range(1, len(hits) + 1))
        lines = [PASSAGES_INTRO, "", *_passage_lines(hits, numbers, self._label), "", NO_MODEL_HINT]
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
        streamer: AnswerStream,
        stop: threading.Event | None,
        started: float,
        max_tokens: int,
        *,
        guard_refusal: bool = False,
    ) -> tuple[float | None, int, bool, bool]:
        """Generate into ``streamer``: (first token seconds, tokens, stopped, loop cut).
        ``guard_refusal``: the model refuses only when sure (``refusal_confidence``); an answer
        it was unsure of still has to pass the grounding check, else the refusal is shown."""
        assert self.engine is not None
        gen = GenerationConfig(
            max_tokens=max_tokens,
            temperature=self.config.temperature,
            repeat_penalty=self.config.repeat_penalty,
            stop=STOP_STRINGS,
            guarded_opening=NOT_FOUND_TEXT if guard_refusal else "",
            opening_confidence=self.config.refusal_confidence if guard_refusal else 0.0,
        )
        first: float | None = None
        tokens = 0
        pieces = self.engine.stream_chat(messages, gen, stop)
        try:
            for piece in pieces:
                if first is None:
                    first = time.perf_counter() - started
                tokens += 1
                if not streamer.feed(piece):
                    break  # a loop: closing the generator ends generation
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        stopped = stop is not None and stop.is_set()
        return first, tokens, stopped, streamer.cut is not None

    def _fit(
        self, sources: list[Source], history: list[ChatMessage], question: str, max_tokens: int
    ) -> tuple[list[ChatMessage], list[Source]]:
        """Everything must fit the context with room for the answer: drop the oldest turns first,
        then the least relevant sources, then shorten the last source."""
        assert self.engine is not None
        budget = self.engine.info.n_ctx - max_tokens
        if budget <= 0:
            raise ModelError(
                f"context size {self.engine.info.n_ctx} leaves no room for a "
                f"{max_tokens}-token answer"
            )
        while True:
            messages = build_messages(
                self.system_prompt, sources, history, question, self.neutralizer
            )
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


def _withhold(text: str, cited: Sequence[int], unsupported: Sequence[str]) -> bool:
    """No valid citation at all, or claims of which none is supported."""
    if not cited:
        return True
    claims = [s for s in split_sentences(text) if NOT_FOUND_TEXT not in s and is_claim(s)]
    return bool(claims) and len(unsupported) >= len(claims)


def _listed(items: Sequence[str]) -> str:
    """The items in a sentence: "E-1042", "E-1042 or L-9", "A, B or C"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _refusal_with_passages(
    lead: str, hits: Sequence[Hit], numbers: Sequence[int], label: Callable[[Hit], str]
) -> str:
    """The refusal, then the passages the user can read instead."""
    return "\n".join([lead, "", PASSAGES_INTRO, "", *_passage_lines(hits, numbers, label)])


def _passage_lines(
    hits: Sequence[Hit], numbers: Sequence[int], label: Callable[[Hit], str]
) -> list[str]:
    lines = []
    for number, hit in zip(numbers, hits, strict=True):
        snippet = " ".join(hit.text.split())
        if len(snippet) > 400:
            snippet = snippet[:400].rsplit(" ", 1)[0] + " ..."
        lines.append(f"[{number}] {label(hit)}: {snippet}")
    return lines


# -- streaming: sentence by sentence, loops cut, nothing unsupported shown -------------------------

# The end of a sentence (with the markers that follow it: "... minutes. [1]") or of a line, once
# the next one has begun: no marker can attach to it any more.
_SENTENCE_DONE = re.compile(
    r"[.!?](?:\s*[\[\uff3b]\d[\d,\s]*[\]\uff3d])*(?=\s+[^\s\[\uff3b])|\n(?=\s*\S)"
)
_WORD = re.compile(r"\S+(?=\s)")
_LAST_SENTENCE_END = re.compile(r"[.!?](?:\s*[\[\uff3b]\d[\d,\s]*[\]\uff3d])*")
# A fragment glued to the end of a cited sentence, "... on Business [1].erdere": Gemma-3-270M
# sometimes emits a stray token before its end of turn. Text right after "]." is never a word
# of the answer, so it is dropped (a version number or file name has no marker before its dot).
_GLUED_AFTER_CITATION = re.compile(r"(?<=[\]\uff3d][.!?])[^\s\[\uff3b]+$")
LOOP_MAX_PERIOD = 16  # words in the repeating unit of a phrase loop
LOOP_MIN_SPAN = 12  # words a phrase loop must cover before it is cut (at least 3 repeats)
LOOP_SENTENCE_WORDS = 5  # a sentence this long said twice is a loop


class AnswerStream:
    """Receives the model's pieces; passes text on to ``on_token`` a sentence at a time.

    - Loops: a sentence of ``LOOP_SENTENCE_WORDS`` words or more said a second time, or a phrase
      of up to ``LOOP_MAX_PERIOD`` words repeated back to back over ``LOOP_MIN_SPAN`` words, ends
      generation (``feed`` returns False) and is cut from the text, first occurrence kept. Checked
      per word and per sentence: a few dozen comparisons a token.
    - Grounding gate (with a ``checker``): nothing is passed on until one sentence is a claim
      supported by a passage it cites; from then on each sentence as it completes. An answer that
      never opens the gate is never shown, which is what lets the service withhold it.
    """

    def __init__(self, checker: SupportChecker | None, on_token: TokenCallback | None) -> None:
        self.checker = checker
        self.on_token = on_token
        self.text = ""
        self.cut: int | None = None
        self.open = checker is None
        self._complete = 0  # text[:_complete] is whole sentences, checked
        self._emitted = 0  # text[:_emitted] has been passed on
        self._words: list[tuple[str, int]] = []  # (normalized word, start offset)
        self._scanned = 0
        self._sentences: set[str] = set()

    def feed(self, piece: str) -> bool:
        """Add a piece; False when generation should end (a loop was cut)."""
        self.text += piece
        if self._phrase_loop():
            return False
        complete = self._complete
        for match in _SENTENCE_DONE.finditer(self.text, self._complete):
            sentence = self.text[complete : match.end()]
            if self._sentence_loop(sentence):
                self.cut = complete
                return False
            if (
                not self.open
                and self.checker is not None
                and self.checker.supported(self.checker.repointed(sentence))
            ):
                self.open = True
            complete = match.end()
        self._complete = complete
        if self.open:
            self._emit_to(self._complete)
        return True

    def final_text(self, *, run_on: bool) -> str:
        """The answer: cut at a loop; stopped by the length limit, cut at its last whole
        sentence (a half sentence reads as a broken answer)."""
        text = self.text if self.cut is None else self.text[: self.cut]
        if run_on and self.cut is None:
            ends = list(_LAST_SENTENCE_END.finditer(text))
            if ends and ends[-1].end() > len(text) // 3:
                text = text[: ends[-1].end()]
        return _GLUED_AFTER_CITATION.sub("", text.rstrip())

    def emit_rest(self, final: str) -> None:
        """The answer stands: pass on what the gate held back, up to the end of ``final``."""
        if self.on_token and len(final) > self._emitted:
            self.on_token(self.repointed(final[self._emitted :]))
        self._emitted = max(self._emitted, len(final))

    def repointed(self, text: str) -> str:
        """``text`` (whole sentences) with each sentence's citation re-pointed where the checker
        says so; cut at the sentence ends the stream uses, so the streamed pieces and the final
        text agree."""
        if self.checker is None:
            return text
        pieces: list[str] = []
        start = 0
        for match in _SENTENCE_DONE.finditer(text):
            pieces.append(text[start : match.end()])
            start = match.end()
        pieces.append(text[start:])
        checker = self.checker
        return "".join(p if NOT_FOUND_TEXT in p else checker.repointed(p) for p in pieces)

    def emit_replacement(self, text: str) -> None:
        """The answer is withheld (the gate never opened, so nothing of it was shown)."""
        if self.on_token:
            self.on_token(text)

    def _emit_to(self, end: int) -> None:
        if end > self._emitted:
            if self.on_token:
                self.on_token(self.repointed(self.text[self._emitted : end]))
            self._emitted = end

    def _sentence_loop(self, sentence: str) -> bool:
        words = strip_markers(sentence).lower().split()
        if len(words) < LOOP_SENTENCE_WORDS:
            return False
        key = " ".join(w.strip(".,;:!?*-") for w in words)
        if key in self._sentences:
            return True
        self._sentences.add(key)
        return False

    def _phrase_loop(self) -> bool:
        for match in _WORD.finditer(self.text, self._scanned):
            self._words.append((match.group(0).lower(), match.start()))
            self._scanned = match.end()
            words = self._words
            n = len(words)
            for period in range(1, LOOP_MAX_PERIOD + 1):
                repeats = max(3, math.ceil(LOOP_MIN_SPAN / period))
                if n < period * repeats:
                    break
                unit = [w for w, _ in words[n - period :]]
                if all(
                    [w for w, _ in words[n - (r + 1) * period : n - r * period]] == unit
                    for r in range(1, repeats)
                ):
                    # Keep the first occurrence, cut from the start of the second.
                    self.cut = words[n - (repeats - 1) * period][1]
                    return True
        return False


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
