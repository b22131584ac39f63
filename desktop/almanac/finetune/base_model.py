"""Early checks of the base model folder, before anything slow happens.

A Hugging Face chat model folder needs ``config.json``, weights, tokenizer files and a chat
template (training prompts are rendered with it, and the GGUF carries it to the app), and its
architecture must be one llama.cpp's converter handles, or the run would fail at export after
hours of training.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.finetune.errors import BaseModelError

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
# Files a merged model folder needs besides config.json and weights (tokenizer, template, ...).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json")


@dataclass(frozen=True, slots=True)
class BaseModelInfo:
    path: Path
    architecture: str  # config.json "architectures"[0], e.g. "Qwen2ForCausalLM"
    model_type: str  # config.json "model_type", e.g. "qwen2"
    context_length: int | None  # max_position_embeddings, when the config states it
    parameters: int | None  # from the safetensors headers; None for .bin weights
    weight_files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "architecture": self.architecture,
            "model_type": self.model_type,
            "context_length": self.context_length,
            "parameters": self.parameters,
            "weight_files": list(self.weight_files),
        }


def inspect_base_model(path: Path, supported: frozenset[str] | None = None) -> BaseModelInfo:
    """Check ``path`` and describe it. ``supported``: the converter's architecture names."""
    if not path.exists():
        raise BaseModelError(f"base model folder not found: {path}")
    if not path.is_dir():
        raise BaseModelError(f"the base model must be a Hugging Face model folder: {path}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise BaseModelError(f"{path} has no config.json: not a Hugging Face model folder")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaseModelError(f"{config_file}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise BaseModelError(f"{config_file}: expected a JSON object")
    weights = sorted({p.name for pattern in WEIGHT_PATTERNS for p in path.glob(pattern)})
    if not weights:
        raise BaseModelError(
            f"{path} has no weights (model.safetensors or pytorch_model.bin); "
            "download the full model, not only its config"
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise BaseModelError(
            f"{path} has no tokenizer (tokenizer.json, tokenizer.model or vocab.json)"
        )
    if not has_chat_template(path):
        raise BaseModelError(
            f"{path} has no chat template (tokenizer_config.json chat_template or "
            "chat_template.jinja): fine-tune an instruct/chat model"
        )
    architecture = _architecture(config)
    if architecture is None:
        raise BaseModelError(f'{config_file} names no architecture ("architectures")')
    if supported is not None and architecture not in supported:
        raise BaseModelError(
            f"architecture {architecture} is not supported by llama.cpp's converter: "
            "the fine-tuned model could not be exported to GGUF"
        )
    nested = config.get("text_config")
    text_config: dict[str, Any] = nested if isinstance(nested, dict) else {}
    context = config.get("max_position_embeddings", text_config.get("max_position_embeddings"))
    return BaseModelInfo(
        path=path,
        architecture=architecture,
        model_type=str(config.get("model_type") or text_config.get("model_type") or ""),
        context_length=context if isinstance(context, int) and context > 0 else None,
        parameters=_safetensors_parameters(path, weights),
        weight_files=tuple(weights),
    )


def has_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def _architecture(config: dict[str, Any]) -> str | None:
    # As llama.cpp's converter decides: a text_config's architectures win for text models.
    for source in (config.get("text_config"), config):
        if isinstance(source, dict):
            names = source.get("architectures")
            if isinstance(names, list) and names and isinstance(names[0], str):
                return names[0]
    return None


def _safetensors_parameters(path: Path, weights: list[str]) -> int | None:
    """Parameter count from the safetensors headers (8-byte length, then JSON): no tensor I/O."""
    total = 0
    for name in weights:
        if not name.endswith(".safetensors"):
            return None
        try:
            with open(path / name, "rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(length))
        except (OSError, struct.error, ValueError):
            return None
        for key, meta in header.items():
            if key == "__metadata__" or not isinstance(meta, dict):
                continue
            count = 1
            for dim in meta.get("shape", []):
                count *= int(dim)
            total += count
    return total


def is_weight_file(name: str) -> bool:
    return name.endswith(WEIGHT_SUFFIXES)
