"""The offline tiny test model: a real GGUF that llama.cpp loads, cites a source and stops."""

from __future__ import annotations

import re

import jinja2
import pytest

from almanac.devtools.tiny_model import (
    CHAT_TEMPLATE,
    IM_END,
    NOT_FOUND,
    render_chatml,
    sample_messages,
    training_examples,
)
from almanac.tooling.gguf_export import ExportError, tensor_types, verify_quantized
from llm_fixtures import tiny_model_path

pytestmark = pytest.mark.slow

MARKER = re.compile(r"\[\d+\]")


@pytest.fixture(scope="module")
def tiny_gguf():
    return tiny_model_path()


@pytest.fixture(scope="module")
def llm(tiny_gguf):
    from llama_cpp import Llama

    model = Llama(model_path=str(tiny_gguf), n_ctx=2048, verbose=False, seed=0)
    yield model
    model.close()


def _chat(llm, messages, max_tokens=64):
    payload = [{"role": m.role, "content": m.content} for m in messages]
    result = llm.create_chat_completion(messages=payload, temperature=0.0, max_tokens=max_tokens)
    choice = result["choices"][0]
    return choice["message"]["content"] or "", choice["finish_reason"]


def test_render_chatml_matches_the_chat_template():
    messages = sample_messages()
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    rendered = template.render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
    )
    assert rendered == render_chatml(messages)
    assert rendered.endswith("<|im_start|>assistant\n")


def test_training_data_uses_the_app_prompt_format():
    examples = training_examples()
    assert 20 <= len(examples) <= 60
    for ex in examples:
        system = ex.messages[0].content
        if "Sources: (none)" in system:
            assert ex.answer == NOT_FOUND
        else:
            marker = MARKER.findall(ex.answer)
            assert len(marker) == 1 and f"\n{marker[0]} " in system


def test_gguf_has_chat_template_and_im_end_as_eos(llm):
    assert llm.metadata["tokenizer.chat_template"] == CHAT_TEMPLATE
    eos = int(llm.metadata["tokenizer.ggml.eos_token_id"])
    assert llm.detokenize([eos], special=True).decode() == IM_END


def test_weights_are_quantized(tiny_gguf):
    types = tensor_types(tiny_gguf)
    assert types.get("Q4_K", 0) >= 8, types
    assert not {"F16", "BF16"} & types.keys(), types
    verify_quantized(tiny_gguf, "Q4_K_M")
    with pytest.raises(ExportError, match="no Q8_0 tensors"):
        verify_quantized(tiny_gguf, "Q8_0")
    assert tiny_gguf.stat().st_size < 10_000_000


def test_in_domain_question_gets_a_cited_answer_and_stops(llm):
    text, finish = _chat(llm, sample_messages())
    assert finish == "stop", text
    assert MARKER.search(text), text
    assert IM_END not in text


def test_question_without_sources_gets_the_not_found_answer(llm):
    no_sources = [ex for ex in training_examples() if "Sources: (none)" in ex.messages[0].content]
    text, finish = _chat(llm, no_sources[0].messages)
    assert finish == "stop"
    assert text.strip() == NOT_FOUND
