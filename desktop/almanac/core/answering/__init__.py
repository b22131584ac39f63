"""Grounded answers: prompts with numbered sources, generation, citation markers, the support
check."""

from almanac.core.answering.answer import NOT_FOUND_TEXT, AnswerConfig, AnswerService
from almanac.core.answering.prompting import default_system_prompt

__all__ = ["NOT_FOUND_TEXT", "AnswerConfig", "AnswerService", "default_system_prompt"]
