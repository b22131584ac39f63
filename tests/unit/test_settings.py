from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from almanac.app.settings import (
    Settings,
    SettingsError,
    SettingsStore,
    default_settings_path,
    validate_settings,
)
from almanac.core.answering.prompting import default_system_prompt
from almanac.core.llm.llama_engine import resolve_gpu_layers


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "tiny.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def full_settings(tmp_path: Path, model: Path) -> Settings:
    docs = tmp_path / "docs"
    more = tmp_path / "more docs ü"
    docs.mkdir()
    more.mkdir()
    return Settings(
        model_path=str(model),
        gpu_layers="12",
        threads=3,
        context_size=8192,
        temperature=0.7,
        sources=8,
        relevance_floor=0.4,
        documents_folders=(str(docs), str(more)),
        copy_dropped_files=False,
        system_prompt="Answer briefly.\nCite [n].",
        theme="dark",
        max_tokens=1024,
    )


def test_defaults_are_valid() -> None:
    assert validate_settings(Settings()) == []


def test_round_trip(tmp_path: Path, full_settings: Settings) -> None:
    store = SettingsStore(tmp_path / "cfg" / "settings.json")
    store.save(full_settings)
    loaded = SettingsStore(store.path).load()
    assert loaded == full_settings
    assert isinstance(loaded.documents_folders, tuple)
    # Plain JSON, readable by a person.
    data = json.loads(store.path.read_text(encoding="utf-8"))
    assert data["documents_folders"] == list(full_settings.documents_folders)
    assert data["version"] == 1


def test_missing_file_gives_defaults_without_warnings(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "nothing.json")
    assert store.load() == Settings()
    assert store.warnings == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"context_size": 256}, "Context size must be between 512 and 131072 tokens"),
        ({"context_size": 200_000}, "Context size must be between 512 and 131072 tokens"),
        ({"threads": 0}, "Threads must be between 1 and 1024"),
        ({"temperature": -0.1}, "Temperature must be between 0 and 2"),
        ({"temperature": 2.5}, "Temperature must be between 0 and 2"),
        ({"temperature": float("nan")}, "Temperature must be between 0 and 2"),
        ({"sources": 0}, "Sources must be between 1 and 50"),
        ({"sources": 51}, "Sources must be between 1 and 50"),
        ({"relevance_floor": 1.5}, "Relevance floor must be between 0 and 1"),
        ({"relevance_floor": -0.01}, "Relevance floor must be between 0 and 1"),
        ({"max_tokens": 8}, "Answer length must be between 16 and 32768 tokens"),
        ({"max_tokens": 4096}, "Answer length must be smaller than the context size"),
        ({"gpu_layers": "most"}, "GPU layers must be 'auto', 'all', 'none' or a whole number"),
        ({"gpu_layers": "-3"}, "GPU layers must be 'auto', 'all', 'none' or a whole number"),
        ({"gpu_layers": ""}, "GPU layers must be 'auto', 'all', 'none' or a whole number"),
        ({"theme": "purple"}, "Theme must be one of system, light, dark"),
        ({"system_prompt": "   "}, "System prompt must not be empty"),
        ({"version": 0}, "Settings version must be a whole number of at least 1"),
        ({"copy_dropped_files": "yes"}, "Copy dropped files must be true or false"),
    ],
)
def test_each_rule_is_refused_with_its_reason(
    tmp_path: Path, change: dict[str, object], reason: str
) -> None:
    bad = dataclasses.replace(Settings(), **change)  # type: ignore[arg-type]
    reasons = validate_settings(bad)
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith(reason)
    store = SettingsStore(tmp_path / "settings.json")
    with pytest.raises(SettingsError) as info:
        store.save(bad)
    assert reason in str(info.value)
    assert info.value.reasons == reasons
    assert not store.path.exists()


def test_model_path_must_exist_and_be_gguf(tmp_path: Path, model: Path) -> None:
    assert validate_settings(Settings(model_path=str(model))) == []
    missing = tmp_path / "gone.gguf"
    assert validate_settings(Settings(model_path=str(missing))) == [
        f"Model file does not exist: {missing}"
    ]
    wrong = tmp_path / "weights.bin"
    wrong.write_bytes(b"x")
    assert validate_settings(Settings(model_path=str(wrong))) == [
        f"Model file must be a .gguf file: {wrong}"
    ]


def test_documents_folders_must_exist(tmp_path: Path) -> None:
    present = tmp_path / "docs"
    present.mkdir()
    gone = tmp_path / "unplugged"
    assert validate_settings(Settings(documents_folders=(str(present),))) == []
    assert validate_settings(Settings(documents_folders=(str(present), str(gone)))) == [
        f"Documents folder does not exist: {gone}"
    ]


def test_every_problem_is_listed(tmp_path: Path) -> None:
    bad = Settings(context_size=1, sources=0, theme="x")
    reasons = validate_settings(bad)
    assert len(reasons) == 3
    with pytest.raises(SettingsError) as info:
        SettingsStore(tmp_path / "s.json").save(bad)
    for reason in reasons:
        assert reason in str(info.value)


@pytest.mark.parametrize("value", ["auto", "all", "none", "0", "33", " ALL "])
def test_accepted_gpu_layers_are_what_the_engine_accepts(value: str) -> None:
    assert validate_settings(Settings(gpu_layers=value)) == []
    resolve_gpu_layers(value, gpu_available=True)  # must not raise


def test_malformed_json_gives_defaults_and_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    broken = '{"theme": "dark", "sources": 7'
    path.write_text(broken, encoding="utf-8")
    store = SettingsStore(path)
    assert store.load() == Settings()
    assert len(store.warnings) == 1
    assert "not valid JSON" in store.warnings[0]
    assert str(path) in store.warnings[0]
    # The user's text is kept next to it, since the next save replaces the file.
    backup = tmp_path / "settings.json.invalid"
    assert backup.read_text(encoding="utf-8") == broken
    assert str(backup) in store.warnings[0]


def test_json_that_is_not_an_object_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("[1, 2]", encoding="utf-8")
    store = SettingsStore(path)
    assert store.load() == Settings()
    assert "does not hold a JSON object" in store.warnings[0]


def test_undecodable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    store = SettingsStore(path)
    assert store.load() == Settings()
    assert "Could not read settings file" in store.warnings[0]


def test_bad_fields_fall_back_one_by_one(tmp_path: Path, model: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "theme": "dark",
                "sources": 500,
                "temperature": "hot",
                "threads": True,
                "model_path": str(tmp_path / "moved.gguf"),
                "context_size": 2048,
            }
        ),
        encoding="utf-8",
    )
    store = SettingsStore(path)
    loaded = store.load()
    # Good fields kept, bad ones reset.
    assert loaded.theme == "dark"
    assert loaded.context_size == 2048
    assert loaded.sources == Settings().sources
    assert loaded.temperature == Settings().temperature
    assert loaded.threads is None
    assert loaded.model_path is None
    text = "\n".join(store.warnings)
    assert len(store.warnings) == 4, store.warnings
    assert "Sources must be between 1 and 50" in text
    assert "Temperature must be between 0 and 2" in text
    assert "Threads must be between" in text
    assert "Model file does not exist" in text
    assert validate_settings(loaded) == []


def test_missing_folders_are_left_out_with_a_warning(tmp_path: Path) -> None:
    present = tmp_path / "docs"
    present.mkdir()
    gone = tmp_path / "unplugged"
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"documents_folders": [str(gone), str(present)]}), "utf-8")
    store = SettingsStore(path)
    assert store.load().documents_folders == (str(present),)
    assert store.warnings == [f"Documents folder does not exist: {gone}; left out"]


def test_answer_length_that_does_not_fit_is_reduced(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"context_size": 1024, "max_tokens": 4096}), "utf-8")
    store = SettingsStore(path)
    loaded = store.load()
    assert loaded.context_size == 1024
    assert loaded.max_tokens < 1024
    assert validate_settings(loaded) == []
    assert "does not fit the context size" in store.warnings[0]


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"theme": "light", "telemetry": True, "window": [1, 2]}), "utf-8")
    store = SettingsStore(path)
    assert store.load() == Settings(theme="light")
    assert store.warnings == []


def test_newer_version_is_read_best_effort(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 7, "theme": "light", "new_thing": 1}), "utf-8")
    store = SettingsStore(path)
    loaded = store.load()
    assert loaded.theme == "light"
    assert loaded.version == 1
    assert len(store.warnings) == 1
    assert "newer Almanac (version 7)" in store.warnings[0]


def test_whole_number_floats_in_json_load_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"temperature": 1, "relevance_floor": 0}), "utf-8")
    loaded = SettingsStore(path).load()
    assert loaded.temperature == 1.0 and isinstance(loaded.temperature, float)
    assert loaded.relevance_floor == 0.0 and isinstance(loaded.relevance_floor, float)


def test_atomic_save_leaves_no_temp_files(tmp_path: Path, full_settings: Settings) -> None:
    folder = tmp_path / "cfg"
    store = SettingsStore(folder / "settings.json")
    store.save(Settings())
    store.save(full_settings)
    assert sorted(p.name for p in folder.iterdir()) == ["settings.json"]
    assert store.load() == full_settings


def test_failed_save_keeps_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(theme="dark"))
    before = store.path.read_bytes()

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.save(Settings(theme="light"))
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_default_path_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMANAC_CONFIG_DIR", str(tmp_path / "conf"))
    assert default_settings_path() == tmp_path / "conf" / "settings.json"
    assert SettingsStore().path == tmp_path / "conf" / "settings.json"
    monkeypatch.delenv("ALMANAC_CONFIG_DIR")
    path = default_settings_path()
    assert path.name == "settings.json"
    assert "Almanac" in path.parts
    assert str(tmp_path) not in str(path)


def test_effective_system_prompt(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "s.json")
    assert store.effective_system_prompt(Settings()) == default_system_prompt()
    assert default_system_prompt()
    custom = Settings(system_prompt="  Be terse.  ")
    assert store.effective_system_prompt(custom) == "Be terse."


def test_saved_file_is_not_a_pickle(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "s.json")
    store.save(Settings())
    raw = store.path.read_bytes()
    assert raw.startswith(b"{")
    assert os.path.getsize(store.path) == len(raw)


def test_poll_folders_round_trip_and_validation(tmp_path) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(poll_folders=True))
    assert store.load().poll_folders is True
    assert validate_settings(Settings(poll_folders="yes")) == ["Poll folders must be true or false"]  # type: ignore[arg-type]
