"""How answers are configured: one place turns the user's Settings (and a command line's explicit
options) into the chat engine and the answer service, for both front ends."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from almanac.app.services import Services, build_engine
from almanac.app.settings import Settings
from almanac.core.answering.answer import AnswerConfig, AnswerService
from almanac.core.answering.prompting import default_system_prompt
from almanac.core.llm.base import Engine


@dataclass(frozen=True, slots=True)
class AnswerOverrides:
    """What a command line says explicitly; None keeps the Settings value."""

    sources: int | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    allow_general_knowledge: bool | None = None
    system_prompt: str | None = None


def system_prompt(settings: Settings) -> str:
    """The user's system prompt, or the shipped one when theirs is unset or blank."""
    if settings.system_prompt is not None and settings.system_prompt.strip():
        return settings.system_prompt.strip()
    return default_system_prompt()


def answer_config(settings: Settings, overrides: AnswerOverrides | None = None) -> AnswerConfig:
    o = overrides or AnswerOverrides()
    return AnswerConfig(
        sources=o.sources if o.sources is not None else settings.sources,
        max_tokens=o.max_tokens if o.max_tokens is not None else settings.max_tokens,
        temperature=o.temperature if o.temperature is not None else settings.temperature,
        allow_general_knowledge=bool(o.allow_general_knowledge),
    )


def build_answer_service(
    services: Services,
    engine: Engine | None,
    settings: Settings,
    overrides: AnswerOverrides | None = None,
) -> AnswerService:
    prompt = (overrides.system_prompt if overrides else None) or system_prompt(settings)
    searcher = services.searcher
    if searcher.config.relevance_floor != settings.relevance_floor:
        # A copy: the shared searcher is also the one other threads search with right now.
        searcher = searcher.with_config(
            dataclasses.replace(searcher.config, relevance_floor=settings.relevance_floor)
        )
    return AnswerService(
        searcher,
        services.embedder,
        engine,
        system_prompt=prompt,
        config=answer_config(settings, overrides),
    )


@dataclass(frozen=True, slots=True)
class EngineOverrides:
    """A command line's engine options; None keeps the Settings value."""

    n_ctx: int | None = None
    gpu_layers: int | str | None = None
    threads: int | None = None
    server_url: str | None = None
    server_model: str | None = None


def build_engine_from_settings(
    model: Path | None,
    settings: Settings,
    *,
    lora: Path | None = None,
    overrides: EngineOverrides | None = None,
    chat_format: str | None = None,
) -> Engine | None:
    """The chat engine for ``model`` (None: sources-only, unless a server is named) with the
    Settings' context size, GPU layers and threads unless the command line named them."""
    o = overrides or EngineOverrides()
    return build_engine(
        model,
        server_url=o.server_url,
        server_model=o.server_model,
        n_ctx=o.n_ctx if o.n_ctx is not None else settings.context_size,
        gpu_layers=o.gpu_layers if o.gpu_layers is not None else settings.gpu_layers,
        threads=o.threads if o.threads is not None else settings.threads,
        lora=lora,
        chat_format=chat_format,
    )
