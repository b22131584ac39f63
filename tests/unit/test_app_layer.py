"""The application layer's start-up and answer configuration: the environment read in one place,
Settings as the one source of answer defaults, the user's system prompt wherever answers are
made."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from almanac.app.answering import (
    AnswerOverrides,
    answer_config,
    build_answer_service,
    system_prompt,
)
from almanac.app.bootstrap import bootstrap
from almanac.app.environment import DEFAULT_MODEL_DIR_ENV, Environment, read_environment
from almanac.app.services import Services, choose_model
from almanac.app.settings import Settings, SettingsStore
from almanac.core.answering.answer import AnswerConfig
from almanac.core.answering.prompting import default_system_prompt
from almanac.core.retrieval.retrieval import RetrievalConfig


def test_the_environment_is_read_into_one_record(tmp_path: Path) -> None:
    env = read_environment(
        {
            "ALMANAC_KB": str(tmp_path / "kb"),
            "ALMANAC_MODEL": str(tmp_path / "m.gguf"),
            "ALMANAC_NO_DEFAULT_MODEL": "yes",
            DEFAULT_MODEL_DIR_ENV: str(tmp_path / "default"),
            "ALMANAC_DOCUMENTS_DIR": "  ",  # blank: unset
        }
    )
    assert env.kb_dir == tmp_path / "kb"
    assert env.model == tmp_path / "m.gguf"
    assert env.no_default_model
    assert env.default_model_dir == tmp_path / "default"
    assert env.documents_dir is None
    assert read_environment({}) == Environment()


def test_model_choice_named_then_environment_then_nothing(tmp_path: Path) -> None:
    env = Environment(model=tmp_path / "env.gguf", no_default_model=True)
    named = choose_model(tmp_path / "named.gguf", env=env)
    assert (named.path, named.origin) == (tmp_path / "named.gguf", "explicit")
    from_env = choose_model(env=env)
    assert (from_env.path, from_env.origin) == (tmp_path / "env.gguf", "environment")
    none = choose_model(env=Environment(no_default_model=True))
    assert none.path is None
    assert none.problem is None


def test_a_missing_default_model_folder_from_the_environment_is_named(tmp_path: Path) -> None:
    choice = choose_model(env=Environment(default_model_dir=tmp_path / "nowhere"))
    assert choice.path is None
    assert choice.problem is not None
    assert "nowhere" in choice.problem


def test_answer_defaults_are_defined_once() -> None:
    settings, config = Settings(), AnswerConfig()
    assert (settings.sources, settings.max_tokens, settings.temperature) == (
        config.sources,
        config.max_tokens,
        config.temperature,
    )
    assert answer_config(settings) == config


def test_command_line_options_override_settings() -> None:
    settings = Settings(sources=7, max_tokens=200, temperature=0.5)
    assert answer_config(settings) == AnswerConfig(sources=7, max_tokens=200, temperature=0.5)
    overridden = answer_config(
        settings, AnswerOverrides(sources=3, temperature=0.0, allow_general_knowledge=True)
    )
    assert overridden == AnswerConfig(
        sources=3, max_tokens=200, temperature=0.0, allow_general_knowledge=True
    )


@pytest.mark.parametrize(
    ("saved", "expected"),
    [
        ("Answer like a pirate. Cite [n].", "Answer like a pirate. Cite [n]."),
        ("  ", None),
        (None, None),
    ],
)
def test_the_answer_service_gets_the_users_system_prompt(
    saved: str | None, expected: str | None
) -> None:
    settings = Settings(system_prompt=saved)
    services = cast(Services, _NoServices())
    service = build_answer_service(services, None, settings)
    assert service.system_prompt == (expected or default_system_prompt())
    assert system_prompt(settings) == service.system_prompt


def test_bootstrap_reads_the_settings_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALMANAC_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("ALMANAC_KB", str(tmp_path / "kb"))
    first = bootstrap()
    assert first.first_start
    assert first.kb_dir == tmp_path / "kb"
    SettingsStore(tmp_path / "settings.json").save(Settings(system_prompt="Be brief."))
    again = bootstrap()
    assert not again.first_start
    assert again.settings.system_prompt == "Be brief."


class _Searcher:
    config = RetrievalConfig(relevance_floor=Settings().relevance_floor)


class _NoServices:
    """Services whose parts the answer service only stores when it is built."""

    searcher = _Searcher()
    embedder = None


def test_model_locations_come_from_the_environment(tmp_path: Path) -> None:
    from almanac.app.environment import model_cache_dir, models_dir, user_catalog_path
    from almanac.core.embedding.onnx_export import default_cache_root
    from almanac.core.llm.catalog import default_models_dir, default_user_catalog_path

    env = read_environment(
        {
            "ALMANAC_MODELS_DIR": str(tmp_path / "models"),
            "ALMANAC_USER_CATALOG": str(tmp_path / "mine.json"),
            "ALMANAC_MODEL_CACHE_DIR": str(tmp_path / "cache"),
        }
    )
    assert models_dir(env) == tmp_path / "models"
    assert user_catalog_path(env) == tmp_path / "mine.json"
    assert model_cache_dir(env) == tmp_path / "cache"
    data_only = read_environment({"ALMANAC_DATA_DIR": str(tmp_path / "data")})
    assert model_cache_dir(data_only) == tmp_path / "data" / "model-cache"
    unset = read_environment({})
    assert models_dir(unset) == default_models_dir()
    assert user_catalog_path(unset) == default_user_catalog_path()
    assert model_cache_dir(unset) == default_cache_root()


def test_the_core_reads_no_environment_variable_of_its_own() -> None:
    """Every ALMANAC_* variable is read by almanac.app.environment, none by the core."""
    import ast

    import almanac.core

    core = Path(almanac.core.__file__).parent
    found = [
        f"{path.relative_to(core)}:{node.lineno}: {node.value}"
        for path in sorted(core.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("ALMANAC_")
    ]
    assert found == []
