"""Conversations to token ids with the base model's chat template; loss on assistant turns only.

Each assistant turn's tokens are found by rendering the conversation up to that turn twice: with
the generation prompt (what the model sees before answering) and with the answer. The tokens in
between, the answer and the template's end-of-turn token, are the training targets; the system
prompt, the sources, the question and the template's markup get label -100 (ignored by the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from almanac.core.llm.base import ChatMessage
from almanac.finetune.errors import FinetuneError

IGNORE = -100  # torch.nn.functional.cross_entropy's ignore_index


@dataclass(frozen=True, slots=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside the assistant turns

    @property
    def target_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def render(tokenizer: Any, messages: Sequence[ChatMessage], add_generation_prompt: bool) -> str:
    payload = [{"role": m.role, "content": m.content} for m in messages]
    text = tokenizer.apply_chat_template(
        payload, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    return str(text)


def token_ids(tokenizer: Any, text: str) -> list[int]:
    # The template writes BOS itself where the model wants one; llama.cpp also tokenizes the
    # rendered prompt with special tokens parsed.
    return [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]


def encode_conversation(tokenizer: Any, messages: Sequence[ChatMessage]) -> Encoded:
    full = token_ids(tokenizer, render(tokenizer, messages, add_generation_prompt=False))
    labels = [IGNORE] * len(full)
    for i, message in enumerate(messages):
        if message.role != "assistant":
            continue
        prompt = token_ids(tokenizer, render(tokenizer, messages[:i], add_generation_prompt=True))
        upto = token_ids(tokenizer, render(tokenizer, messages[: i + 1], False))
        if upto[: len(prompt)] != prompt or full[: len(upto)] != upto:
            raise FinetuneError(
                "the chat template renders earlier turns differently once later turns follow "
                "(e.g. it drops reasoning text): train on single-answer conversations"
            )
        if len(upto) == len(prompt):
            raise FinetuneError("the chat template rendered an assistant turn as nothing")
        labels[len(prompt) : len(upto)] = full[len(prompt) : len(upto)]
    return Encoded(full, labels)


def load_tokenizer(model_dir: Any) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of attention and loss; any id will do.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
