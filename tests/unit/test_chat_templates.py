"""Chat templates for GGUF files without one: the built-in Gemma turn format (rendered the same by
transformers, which renders the training conversations, and by llama-cpp-python's formatter, which
renders the app's prompts), how the engine picks a template, the recipe's ``[model] chat_template``
and the default model manifest's ``chat_format``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from transformers.utils.chat_template_utils import render_jinja_template

from almanac.core.llm.chat_templates import (
    BUILTIN,
    CHATML,
    GEMMA,
    ChatTemplateError,
    choose_chat_template,
    guess_chat_format,
    load_chat_template,
)
from almanac.core.llm.default_model import DefaultModelError, resolve_default_model
from almanac.finetune.errors import RecipeError
from almanac.finetune.recipe import Recipe, load_recipe, parse_recipe

SYSTEM = "You answer from the sources.\n\nSources:\n\n[1] faq.md - Billing\nRefunds take 14 days."
CONVERSATIONS = [
    [{"role": "user", "content": "How long do refunds take?"}],
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "How long?"}],
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "  How long do refunds take?\n"},
        {"role": "assistant", "content": "Refunds take 14 days [1]."},
        {"role": "user", "content": "And by card?"},
    ],
]


def _llama(template: str, messages: list[dict[str, str]]) -> str:
    formatter = Jinja2ChatFormatter(template, eos_token="<eos>", bos_token="<bos>")
    return formatter(messages=messages).prompt  # type: ignore[arg-type]


def _transformers(template: str, messages: list[dict[str, str]], generation: bool) -> str:
    rendered, _ = render_jinja_template(
        [messages],
        chat_template=template,
        add_generation_prompt=generation,
        bos_token="<bos>",
        eos_token="<eos>",
    )
    return str(rendered[0])


def test_gemma_folds_the_system_prompt_into_the_first_user_turn():
    prompt = _llama(GEMMA, CONVERSATIONS[1])
    assert prompt == (
        f"<bos><start_of_turn>user\n{SYSTEM}\n\nHow long?<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_renders_history_with_the_model_role_and_bos_once():
    prompt = _llama(GEMMA, CONVERSATIONS[2])
    assert prompt == (
        f"<bos><start_of_turn>user\n{SYSTEM}\n\nHow long do refunds take?<end_of_turn>\n"
        "<start_of_turn>model\nRefunds take 14 days [1].<end_of_turn>\n"
        "<start_of_turn>user\nAnd by card?<end_of_turn>\n<start_of_turn>model\n"
    )
    assert prompt.count("<bos>") == 1 and "system" not in prompt.split("\n")[0]


def test_gemma_without_a_system_prompt():
    assert _llama(GEMMA, CONVERSATIONS[0]) == (
        "<bos><start_of_turn>user\nHow long do refunds take?<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("index", range(len(CONVERSATIONS)))
def test_training_and_the_app_render_the_same_text(name, index):
    """transformers (training) and llama-cpp-python (the app) render every built-in alike."""
    template = BUILTIN[name]
    messages = CONVERSATIONS[index]
    assert _transformers(template, messages, True) == _llama(template, messages)


def test_a_finished_gemma_conversation_closes_the_answer_with_end_of_turn():
    done = [*CONVERSATIONS[1], {"role": "assistant", "content": "Refunds take 14 days [1]. "}]
    text = _transformers(GEMMA, done, False)
    assert text.endswith("<start_of_turn>model\nRefunds take 14 days [1].<end_of_turn>\n")
    # The prompt is a prefix of the finished conversation (the answer's tokens follow it).
    assert text.startswith(_transformers(GEMMA, CONVERSATIONS[1], True))


def test_gemma_refuses_turns_that_do_not_alternate():
    with pytest.raises(ValueError, match="alternate"):
        _llama(GEMMA, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_the_engine_keeps_a_gguf_template_and_names_one_for_a_file_without():
    gemma_vocab = {"<start_of_turn>", "<end_of_turn>", "<bos>"}
    choice = choose_chat_template("{{ x }}", "gemma", gemma_vocab.__contains__)
    assert (choice.template, choice.source, choice.end_of_turn) == ("{{ x }}", "gguf", None)
    named = choose_chat_template(None, "Gemma", lambda _t: False)
    assert (named.template, named.source, named.end_of_turn) == (GEMMA, "gemma", "<end_of_turn>")
    guessed = choose_chat_template("", None, gemma_vocab.__contains__)
    assert (guessed.template, guessed.source) == (GEMMA, "guessed: gemma")
    fallback = choose_chat_template(None, None, lambda _t: False)
    assert (fallback.template, fallback.source) == (CHATML, "fallback: chatml")
    assert guess_chat_format({"<|im_start|>", "<|im_end|>"}.__contains__) == "chatml"
    assert guess_chat_format({"<start_of_turn>"}.__contains__) is None  # both markers or none
    with pytest.raises(ChatTemplateError, match="unknown chat format"):
        choose_chat_template(None, "vicuna", lambda _t: False)


def test_a_template_is_a_built_in_name_or_a_file(tmp_path):
    assert load_chat_template(" gemma ") == GEMMA
    (tmp_path / "mine.jinja").write_text("{{ messages }}", encoding="utf-8")
    assert load_chat_template("mine.jinja", tmp_path) == "{{ messages }}"
    with pytest.raises(ChatTemplateError, match="neither a built-in"):
        load_chat_template("missing.jinja", tmp_path)


def test_the_recipe_names_a_chat_template(tmp_path):
    assert Recipe().model.chat_template == ""
    recipe = parse_recipe({"model": {"chat_template": "gemma"}})
    assert recipe.model.chat_template == "gemma"
    assert recipe.training_fingerprint() != Recipe().training_fingerprint()
    with pytest.raises(RecipeError, match=r"\[model\]\.chat_template"):
        parse_recipe({"model": {"chat_template": "vicuna"}})
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "r.toml").write_text('[model]\nchat_template = "t/my.jinja"\n', encoding="utf-8")
    loaded = load_recipe(folder / "r.toml")
    assert loaded.model.chat_template == str((folder / "t" / "my.jinja").resolve())
    # The effective recipe (OUT/recipe.toml) reads back unchanged.
    (tmp_path / "again.toml").write_text(loaded.to_toml(), encoding="utf-8")
    assert load_recipe(tmp_path / "again.toml") == loaded


def test_an_unset_template_leaves_earlier_runs_resumable():
    """Checkpoints carry the training fingerprint: a recipe without [model] keeps its old one."""
    import dataclasses
    import hashlib

    recipe = Recipe()
    train = dataclasses.asdict(recipe.train)
    for key in ("checkpoint_every", "keep_checkpoints", "device", "gradient_checkpointing"):
        train.pop(key)
    del train["threads"]
    payload = {"lora": dataclasses.asdict(recipe.lora), "train": train, "data": recipe.data}
    text = json.dumps(payload, sort_keys=True, default=dataclasses.asdict)
    assert recipe.training_fingerprint() == hashlib.sha256(text.encode()).hexdigest()[:16]


def _manifest(folder: Path, **extra: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.gguf").write_bytes(b"GGUF")
    manifest = {"name": "m", "base": {"file": "base.gguf", "sha256": "0" * 64}, **extra}
    (folder / "default-model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_the_default_model_manifest_names_a_chat_format(tmp_path):
    assert resolve_default_model(_manifest(tmp_path / "a")).chat_format is None
    found = resolve_default_model(_manifest(tmp_path / "b", chat_format="Gemma"))
    assert found.chat_format == "gemma"
    with pytest.raises(DefaultModelError, match="chat_format"):
        resolve_default_model(_manifest(tmp_path / "c", chat_format="vicuna"))


def test_a_question_left_unanswered_is_not_in_the_next_prompt():
    """The chat keeps only the model's own answers: after a question refused by retrieval the
    history holds two questions in a row, which Gemma's template refuses ("Could not answer:
    Gemma turns must alternate" on the third question of a desktop chat). The prompt carries
    each earlier question with its answer, and the unanswered one not at all."""
    from almanac.core.answering.prompting import Source, answered_turns, build_messages
    from almanac.core.llm.base import ChatMessage

    history = [
        ChatMessage("user", "How do I reset my password?"),
        ChatMessage("assistant", "Use Forgot password on the sign-in screen [1]."),
        ChatMessage("user", "Who won the 2018 World Cup?"),  # refused: nothing of the model's
        ChatMessage("system", "a note no prompt should carry"),
    ]
    messages = build_messages("sys", [Source(1, "faq.md", "text")], history, "Is it free?")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert "World Cup" not in "".join(m.content for m in messages)
    prompt = _llama(GEMMA, [{"role": m.role, "content": m.content} for m in messages])
    assert prompt.count("<start_of_turn>user") == 2 and "Is it free?" in prompt
    # An answer with no question before it has nothing to pair with; a later question replaces
    # one left unanswered.
    assert answered_turns([ChatMessage("assistant", "orphan")]) == []
    pairs = answered_turns(
        [ChatMessage("user", "a"), ChatMessage("user", "b"), ChatMessage("assistant", "B")]
    )
    assert [m.content for m in pairs] == ["b", "B"]
