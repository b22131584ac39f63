"""The user model catalog: where almanac finetune registers the models it makes."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from almanac.core.llm.catalog import (
    CatalogError,
    UserModel,
    default_user_catalog_path,
    load_user_models,
    register_user_model,
)


def model(path="/models/a.gguf", sha="a" * 64, name="A"):
    return UserModel(
        name=name,
        path=path,
        sha256=sha,
        size_bytes=123,
        quantization="Q4_K_M",
        context_length=2048,
        base_model="/hf/base",
        model_card="/out/MODEL_CARD.md",
        created="2025-06-01T00:00:00+00:00",
    )


def test_an_absent_catalog_is_empty(tmp_path):
    assert load_user_models(tmp_path / "none.json") == []


def test_register_adds_and_replaces_by_path(tmp_path):
    catalog = tmp_path / "sub" / "user-models.json"
    register_user_model(model(), catalog)
    register_user_model(model("/models/b.gguf", "b" * 64, "B"), catalog)
    register_user_model(model(sha="c" * 64, name="A2"), catalog)  # the same file, rebuilt
    models = load_user_models(catalog)
    assert [(m.name, m.sha256[0]) for m in models] == [("B", "b"), ("A2", "c")]
    raw = json.loads(catalog.read_text())
    assert raw["version"] == 1 and len(raw["models"]) == 2
    assert not list(catalog.parent.glob("*.partial"))


def test_the_environment_chooses_the_file(tmp_path, monkeypatch):
    from almanac.app.environment import user_catalog_path

    monkeypatch.setenv("ALMANAC_USER_CATALOG", str(tmp_path / "mine.json"))
    assert user_catalog_path() == tmp_path / "mine.json"
    assert default_user_catalog_path() != tmp_path / "mine.json"  # the core reads no environment
    register_user_model(model(), user_catalog_path())
    assert load_user_models(tmp_path / "mine.json")[0].name == "A"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not a readable JSON file"),
        ('{"version": 2, "models": []}', 'expected {"version": 1'),
        ('{"version": 1, "models": [{"name": "x", "colour": 1}]}', "models[0]: expected"),
        ('{"version": 1, "models": [{"name": "x"}]}', "models[0]"),
    ],
)
def test_a_damaged_catalog_is_reported_not_overwritten(tmp_path, content, message):
    catalog = tmp_path / "user-models.json"
    catalog.write_text(content)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_user_models(catalog)
    with pytest.raises(CatalogError):
        register_user_model(model(), catalog)
    assert catalog.read_text() == content


def test_a_bad_hash_is_refused(tmp_path):
    catalog = tmp_path / "user-models.json"
    payload = {"version": 1, "models": [dataclasses.asdict(model()) | {"sha256": "x"}]}
    catalog.write_text(json.dumps(payload))
    with pytest.raises(CatalogError, match="sha256"):
        load_user_models(catalog)
