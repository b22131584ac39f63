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
from almanac.app.environment import Environment, read_environment
from almanac.app.services import Services, choose_model
from almanac.app.settings import Settings, SettingsStore
from almanac.core.answering.answer import AnswerConfig
from almanac.core.answering.prompting import default_system_prompt
from almanac.core.llm.default_model import DEFAULT_MODEL_DIR_ENV


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


class _NoServices:
    """Services whose parts the answer service only stores when it is built."""

    searcher = None
    embedder = None
