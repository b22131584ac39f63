"""What every chat engine provides: token counting, streaming generation, a stop that works."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    max_tokens: int = 512
    temperature: float = 0.2
    top_p: float = 0.95
    seed: int | None = None
    # 1.0 is off. Penalizes only tokens of the answer's own recent past (llama.cpp's window is the
    # last 64 generated tokens, not the prompt), so copying a number from a source is unaffected.
    repeat_penalty: float = 1.0
    stop: tuple[str, ...] = ()  # text that ends the answer (not included in it)
    # An opening the model must be sure of: the first token of ``guarded_opening`` may start the
    # answer only when the model gives it at least ``opening_confidence`` probability. A small
    # model puts its refusal's single opening token above any one answer token even when most of
    # its probability is on answering (SmolLM2 + Almanac's adapter: P("I") 0.3-0.6 on questions
    # its sources answer), so greedy decoding refuses what it could answer.
    guarded_opening: str = ""
    opening_confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")
        if not 1.0 <= self.repeat_penalty <= 2.0:
            raise ValueError("repeat_penalty must be between 1 (off) and 2")
        if not 0.0 <= self.opening_confidence <= 1.0:
            raise ValueError("opening_confidence must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class EngineInfo:
    backend: str  # e.g. "llama.cpp (CPU)", "llama.cpp (CUDA, 29/29 layers)", "openai-compatible"
    model: str  # file name or served model id
    n_ctx: int
    chat_template: str  # "gguf" when the model's own template is used, else the fallback's name
    threads: int | None = None
    gpu_layers: int = 0
    lora: str | None = None  # file name of a LoRA adapter applied at run time


class ModelError(Exception):
    """A model can't be used. The message says why, specifically, in one line."""


class ModelNotFoundError(ModelError):
    pass


class NotAModelError(ModelError):
    pass


class TruncatedModelError(ModelError):
    pass


class UnsupportedModelError(ModelError):
    pass


class ModelTooLargeError(ModelError):
    pass


class Engine(Protocol):
    """A chat model. Not thread-safe: one worker owns an engine and calls it."""

    @property
    def info(self) -> EngineInfo: ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens the rendered prompt of ``messages`` takes (chat template included)."""
        ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        config: GenerationConfig,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the answer piece by piece. Setting ``stop`` ends generation within one token."""
        ...

    def close(self) -> None: ...
