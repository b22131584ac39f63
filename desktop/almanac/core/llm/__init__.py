"""Local language models (llama.cpp via llama-cpp-python) and OpenAI-compatible chat servers."""

from almanac.core.llm.base import (
    ChatMessage,
    Engine,
    EngineInfo,
    GenerationConfig,
    ModelError,
)

__all__ = ["ChatMessage", "Engine", "EngineInfo", "GenerationConfig", "ModelError"]
