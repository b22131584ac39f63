"""Base model folders are checked before anything slow: files, chat template, architecture
against llama.cpp's converter (read from its source, not imported)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from almanac.finetune.base_model import inspect_base_model
from almanac.finetune.converter import supported_architectures
from almanac.finetune.errors import BaseModelError
from almanac.tooling import gguf_export

REPO = Path(__file__).resolve().parents[2]


def safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header = {
        name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
        for name, shape in shapes.items()
    }
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data)


def model_dir(tmp_path: Path, **config) -> Path:
    path = tmp_path / "base"
    path.mkdir()
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **config}
    (path / "config.json").write_text(json.dumps(config))
    safetensors(path / "model.safetensors", {"a": [4, 8], "b": [8]})
    (path / "tokenizer.json").write_text("{}")
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    return path


def test_a_complete_folder_is_described(tmp_path):
    info = inspect_base_model(model_dir(tmp_path, max_position_embeddings=2048))
    assert info.architecture == "LlamaForCausalLM" and info.model_type == "llama"
    assert info.context_length == 2048
    assert info.parameters == 4 * 8 + 8
    assert info.weight_files == ("model.safetensors",)


def test_text_config_wins_like_in_the_converter(tmp_path):
    path = model_dir(
        tmp_path,
        architectures=["Gemma3ForConditionalGeneration"],
        text_config={"architectures": ["Gemma3ForCausalLM"], "max_position_embeddings": 8192},
    )
    info = inspect_base_model(path)
    assert info.architecture == "Gemma3ForCausalLM" and info.context_length == 8192


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda p: (p / "config.json").unlink(), "has no config.json"),
        (lambda p: (p / "config.json").write_text("{nope"), "config.json: not valid JSON"),
        (lambda p: (p / "model.safetensors").unlink(), "has no weights"),
        (lambda p: (p / "tokenizer.json").unlink(), "has no tokenizer"),
        (lambda p: (p / "tokenizer_config.json").write_text("{}"), "has no chat template"),
        (
            lambda p: (p / "config.json").write_text('{"model_type": "llama"}'),
            "names no architecture",
        ),
    ],
)
def test_each_missing_piece_is_named(tmp_path, breakage, message):
    path = model_dir(tmp_path)
    breakage(path)
    with pytest.raises(BaseModelError, match=message):
        inspect_base_model(path)


def test_a_separate_chat_template_file_counts(tmp_path):
    path = model_dir(tmp_path)
    (path / "tokenizer_config.json").write_text("{}")
    (path / "chat_template.jinja").write_text("{{ messages }}")
    inspect_base_model(path)


def test_not_a_folder(tmp_path):
    with pytest.raises(BaseModelError, match="not found"):
        inspect_base_model(tmp_path / "missing")
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(BaseModelError, match="must be a Hugging Face model folder"):
        inspect_base_model(tmp_path / "model.gguf")


@pytest.fixture(scope="module")
def converter_src():
    # The same cached converter the tiny test model is built with (fetched once with pip).
    return gguf_export.converter_dir(REPO / "build" / "test-models")


def test_the_converters_architectures_are_read_from_its_source(converter_src):
    names = supported_architectures(converter_src)
    assert {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"} <= names
    assert {"Phi3ForCausalLM", "Gemma2ForCausalLM"} <= names
    assert "BertForSequenceClassification" in names  # registered, so the converter takes it
    assert "FooForCausalLM" not in names


def test_an_architecture_the_converter_lacks_is_refused(tmp_path, converter_src):
    path = model_dir(tmp_path, architectures=["FooForCausalLM"])
    with pytest.raises(BaseModelError, match=r"FooForCausalLM is not supported by llama\.cpp"):
        inspect_base_model(path, supported_architectures(converter_src))


def test_register_decorators_are_found_too(tmp_path):
    # Older converters: one file, classes registered with @ModelBase.register("...").
    (tmp_path / gguf_export.CONVERTER).write_text(
        "class ModelBase:\n    pass\n\n"
        '@ModelBase.register("OldForCausalLM", "OlderForCausalLM")\n'
        "class Old(ModelBase):\n    pass\n"
    )
    assert supported_architectures(tmp_path) == {"OldForCausalLM", "OlderForCausalLM"}
