"""Chat templates for models whose GGUF carries none, and how the engine picks one.

A GGUF's own template (``tokenizer.chat_template``) always wins. A file without one (a base model
such as Gemma-3-270M, fine-tuned with a template its recipe supplies and shipped as base GGUF +
LoRA adapter) is rendered with a named template here: the name the caller gives (the default
model's manifest, ``"chat_format"``), else the name the vocabulary gives away (Gemma's
``<start_of_turn>`` / ``<end_of_turn>`` control tokens), else ChatML as before.

The same Jinja text renders the training conversations (the fine-tuning recipe's
``[model] chat_template`` names it) and the prompts at run time (llama-cpp-python's
``Jinja2ChatFormatter``), so the model is asked in exactly the form it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ChatML, the fallback for any file without a template (what the engine always did).
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Gemma's turn format (as Gemma 3's instruction-tuned models use it): BOS once at the start, no
# system role (the system text and a blank line open the first user turn), the assistant's turns
# are the "model" role, every turn's text trimmed and closed by <end_of_turn> and a newline.
# llama-cpp-python's own "gemma" chat format drops system messages, and with them Almanac's
# numbered sources: this template keeps them.
GEMMA = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set prefix = messages[0]['content'] + '\\n\\n' %}"
    "{% set turns = messages[1:] %}"
    "{% else %}"
    "{% set prefix = '' %}"
    "{% set turns = messages %}"
    "{% endif %}"
    "{% for message in turns %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Gemma turns must alternate user, assistant, user, ...') }}"
    "{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + (prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

BUILTIN: dict[str, str] = {"chatml": CHATML, "gemma": GEMMA}
# The end-of-turn token each built-in template closes a turn with (generation stops on it).
END_OF_TURN: dict[str, str] = {"chatml": "<|im_end|>", "gemma": "<end_of_turn>"}
# Control tokens that name a vocabulary's turn format, checked in this order.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gemma", ("<start_of_turn>", "<end_of_turn>")),
    ("chatml", ("<|im_start|>", "<|im_end|>")),
)


class ChatTemplateError(ValueError):
    """An unknown template name or an unreadable template file."""


@dataclass(frozen=True, slots=True)
class ChatTemplateChoice:
    template: str  # the Jinja text
    source: str  # "gguf", "gemma" (named), "guessed: gemma", "fallback: chatml"
    name: str | None  # the built-in's name, None for the GGUF's own template
    end_of_turn: str | None  # the end-of-turn token's text, when it is not the GGUF's EOS


def builtin_names() -> tuple[str, ...]:
    return tuple(BUILTIN)


def load_chat_template(spec: str, base_dir: Path | None = None) -> str:
    """The Jinja text ``spec`` names: a built-in name ("gemma", "chatml") or a template file
    (relative paths from ``base_dir``)."""
    name = spec.strip()
    if name.lower() in BUILTIN:
        return BUILTIN[name.lower()]
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ChatTemplateError(
            f"chat template {spec!r} is neither a built-in ({', '.join(BUILTIN)}) nor a file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ChatTemplateError(f"cannot read chat template file {path}: {exc}") from exc
    if not text.strip():
        raise ChatTemplateError(f"chat template file {path} is empty")
    return text


def guess_chat_format(has_control_token: Callable[[str], bool]) -> str | None:
    """The built-in whose turn markers are all control tokens of the vocabulary, or None."""
    for name, markers in _SIGNATURES:
        if all(has_control_token(m) for m in markers):
            return name
    return None


def choose_chat_template(
    gguf_template: str | None,
    chat_format: str | None,
    has_control_token: Callable[[str], bool],
) -> ChatTemplateChoice:
    """The template the engine renders prompts with: the GGUF's own; else ``chat_format`` (a
    built-in name); else the format the vocabulary's control tokens name; else ChatML."""
    if gguf_template:
        return ChatTemplateChoice(gguf_template, "gguf", None, None)
    if chat_format:
        name = chat_format.strip().lower()
        if name not in BUILTIN:
            raise ChatTemplateError(
                f"unknown chat format {chat_format!r} (known: {', '.join(BUILTIN)})"
            )
        return ChatTemplateChoice(BUILTIN[name], name, name, END_OF_TURN[name])
    guessed = guess_chat_format(has_control_token)
    if guessed is not None and guessed != "chatml":
        return ChatTemplateChoice(
            BUILTIN[guessed], f"guessed: {guessed}", guessed, END_OF_TURN[guessed]
        )
    return ChatTemplateChoice(CHATML, "fallback: chatml", "chatml", END_OF_TURN["chatml"])
