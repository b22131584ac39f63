"""Recipe files: defaults, overrides, errors that name the file and key, the shipped recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from almanac.finetune.errors import RecipeError
from almanac.finetune.recipe import (
    ALL_LINEAR,
    LoraSettings,
    Recipe,
    load_recipe,
    parse_recipe,
    target_modules,
)

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "models" / "finetune").glob("*.toml"))


def test_no_file_means_the_defaults():
    recipe = load_recipe(None)
    assert recipe == Recipe()
    assert recipe.lora.r == 16 and recipe.train.learning_rate == 2e-4
    assert recipe.export.quant == "Q4_K_M"


def test_a_toml_file_overrides_only_its_keys(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        '[lora]\nr = 8\ntarget_modules = ["q_proj", "v_proj"]\n\n'
        '[train]\nlearning_rate = 1e-4\nmax_steps = 300\n\n[export]\nquant = "Q8_0"\n'
    )
    recipe = load_recipe(path)
    assert recipe.lora.r == 8 and recipe.lora.alpha == 32
    assert recipe.lora.target_modules == ("q_proj", "v_proj")
    assert recipe.train.learning_rate == 1e-4 and recipe.train.max_steps == 300
    assert recipe.train.epochs == 3
    assert recipe.export.quant == "Q8_0"


def test_json_recipes_and_toml_round_trip(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"train": {"learning_rate": 3, "seed": 7}}')
    recipe = load_recipe(path)
    assert recipe.train.learning_rate == 3.0 and recipe.train.seed == 7
    again = tmp_path / "again.toml"
    again.write_text(recipe.to_toml())
    assert load_recipe(again) == recipe


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[optim]\nlr = 1\n", "unknown section [optim]"),
        ("[train]\nlr = 1\n", "[train].lr: unknown key"),
        ('[train]\nepochs = "3"\n', "[train].epochs: expected int, got str"),
        ("[train]\nepochs = 1.5\n", "[train].epochs: expected int, got float"),
        ("[train]\ngradient_checkpointing = 1\n", "expected bool, got int"),
        ("[lora]\nr = true\n", "[lora].r: expected int, got bool"),
        ('[lora]\ntarget_modules = "q_proj"\n', "[lora].target_modules: expected a list"),
        ("[lora]\ndropout = 1.0\n", "[lora].dropout must be in [0, 1)"),
        ("[train]\nbatch_size = 0\n", "[train].batch_size must be at least 1"),
        ('[train]\ndevice = "tpu"\n', "[train].device must be auto, cpu or cuda"),
        ('[export]\nquant = "Q3_K"\n', "[export].quant must be one of"),
        ("[train\n", "not valid TOML"),
        ("train = 3\n", "[train] must be a table"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_missing_file():
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(Path("/nonexistent/recipe.toml"))


def test_command_line_overrides_are_validated():
    recipe = Recipe().with_overrides(quant="q8_0", max_steps=10)
    assert recipe.export.quant == "Q8_0" and recipe.train.max_steps == 10
    with pytest.raises(RecipeError, match="command line"):
        Recipe().with_overrides(quant="Q2")


def test_lora_targets_per_architecture():
    assert target_modules(Recipe(), "qwen2") == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    assert target_modules(Recipe(), "phi3") == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert target_modules(Recipe(), "some_new_model") == ALL_LINEAR
    own = Recipe(lora=LoraSettings(target_modules=("q_proj",)))
    assert target_modules(own, "llama") == ["q_proj"]


def test_the_fingerprint_follows_training_settings_only():
    base = Recipe()
    assert base.training_fingerprint() == Recipe().training_fingerprint()
    assert parse_recipe({"train": {"checkpoint_every": 5}}).training_fingerprint() == (
        base.training_fingerprint()
    )
    assert parse_recipe({"train": {"learning_rate": 1e-3}}).training_fingerprint() != (
        base.training_fingerprint()
    )


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_load(path):
    recipe = load_recipe(path)
    assert recipe.export.quant in ("Q4_K_M", "Q8_0", "F16")


def test_default_toml_states_the_defaults():
    assert load_recipe(REPO / "models" / "finetune" / "default.toml") == Recipe()
    assert len(RECIPES) >= 5
