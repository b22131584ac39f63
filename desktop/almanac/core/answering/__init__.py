"""Grounded answers: prompts with numbered sources, generation, citation markers, the support
check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from almanac.core.system.lazy import lazy_names

if TYPE_CHECKING:
    from almanac.core.answering.answer import (
        NOT_FOUND_TEXT,
        AnswerConfig,
        AnswerService,
    )
    from almanac.core.answering.prompting import default_system_prompt

__all__ = [
    "NOT_FOUND_TEXT",
    "AnswerConfig",
    "AnswerService",
    "default_system_prompt",
]

# Imported on first use (PEP 562): importing one light submodule (a record, a constant) must
# not load numpy, LanceDB or onnxruntime with the rest of the package (the desktop window
# is on screen before they load).
_SUBMODULE = {
    "NOT_FOUND_TEXT": "almanac.core.answering.answer",
    "AnswerConfig": "almanac.core.answering.answer",
    "AnswerService": "almanac.core.answering.answer",
    "default_system_prompt": "almanac.core.answering.prompting",
}


__getattr__ = lazy_names(__name__, _SUBMODULE)
