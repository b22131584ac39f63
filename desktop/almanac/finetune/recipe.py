"""The recipe: every setting of a fine-tuning run, from a TOML or JSON file plus defaults.

The defaults suit 0.5B-3B chat models trained on a few hundred to a few thousand support
conversations: LoRA rank 16 on all attention and MLP projections, learning rate 2e-4, 3 epochs,
an effective batch of 16 conversations. A recipe file overrides any of them::

    [model]
    chat_template = "gemma"  # only for a base GGUF without a chat template of its own

    [lora]
    r = 16
    alpha = 32

    [train]
    learning_rate = 1e-4
    max_steps = 300
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from almanac.core.llm.chat_templates import builtin_names
from almanac.finetune.errors import RecipeError
from almanac.tooling.gguf_export import QTYPES

# LoRA targets per Hugging Face ``model_type``: every attention and MLP projection (adapting the
# MLP too matters for behaviour changes; attention-only LoRA learns formats more slowly).
_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    **{
        name: _LLAMA_LIKE
        for name in (
            "llama",
            "mistral",
            "qwen2",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "granite",
            "olmo2",
            "smollm3",
            "stablelm",
        )
    },
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
}
# PEFT's own choice for other architectures: every linear layer except the output head.
ALL_LINEAR = "all-linear"


@dataclass(frozen=True, slots=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ()  # empty: DEFAULT_TARGETS for the base's model_type


@dataclass(frozen=True, slots=True)
class TrainSettings:
    learning_rate: float = 2e-4
    epochs: int = 3
    max_steps: int = 0  # 0: as many as ``epochs`` take
    batch_size: int = 4
    grad_accum: int = 4
    max_length: int = 2048  # tokens per conversation; longer ones are rejected, never truncated
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1  # cosine decay ends at this fraction of the learning rate
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    gradient_checkpointing: bool = False  # less memory for 3B models, ~30% slower
    device: str = "auto"  # auto (CUDA when available), cpu, cuda
    threads: int = 0  # CPU threads for training and evaluation; 0: one per core
    # CPU matrix products in bf16 (weights stay float32): "auto" where the CPU has native bf16
    # (avx512_bf16 / AMX), 1.5-2x faster there; "bf16" or "fp32" to force.
    cpu_precision: str = "auto"


@dataclass(frozen=True, slots=True)
class DataSettings:
    eval_fraction: float = 0.1  # share of conversations held out for the evaluation
    eval_max: int = 50


@dataclass(frozen=True, slots=True)
class ExportSettings:
    quant: str = "Q4_K_M"
    name: str = ""  # model name; empty: "<base folder name>-support"


@dataclass(frozen=True, slots=True)
class EvalSettings:
    enabled: bool = True
    max_tokens: int = 256
    n_ctx: int = 0  # 0: the training max_length (prompts and answer must fit)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    # The chat template for a base GGUF that carries none (a base model, e.g. Gemma-3-270M): a
    # built-in name (almanac.core.llm.chat_templates.BUILTIN: "gemma", "chatml") or a Jinja file
    # (relative to the recipe's folder). Empty: the base's own template, which a base must have.
    # A base that has a template keeps it; this one is used only where the base has none.
    chat_template: str = ""


@dataclass(frozen=True, slots=True)
class Recipe:
    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    data: DataSettings = field(default_factory=DataSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def with_overrides(self, *, quant: str | None = None, max_steps: int | None = None) -> Recipe:
        """The recipe with the command line's options applied (validated)."""
        recipe = self
        if quant is not None:
            recipe = dataclasses.replace(
                recipe, export=dataclasses.replace(recipe.export, quant=quant.upper())
            )
        if max_steps is not None:
            recipe = dataclasses.replace(
                recipe, train=dataclasses.replace(recipe.train, max_steps=max_steps)
            )
        validate(recipe, "command line")
        return recipe

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The full recipe as a TOML file that :func:`load_recipe` reads back unchanged."""
        lines: list[str] = []
        for section in fields(self):
            lines.append(f"[{section.name}]")
            for key, value in dataclasses.asdict(getattr(self, section.name)).items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)

    def training_fingerprint(self) -> str:
        """Changes when a setting that shapes the trained weights changes (for --resume)."""
        train = dataclasses.asdict(self.train)
        for key in (
            "checkpoint_every",
            "keep_checkpoints",
            "device",
            "gradient_checkpointing",
            "threads",
        ):
            train.pop(key)
        payload: dict[str, Any] = {
            "lora": dataclasses.asdict(self.lora),
            "train": train,
            "data": self.data,
        }
        if self.model.chat_template:  # absent when unset: earlier runs' checkpoints still resume
            payload["model"] = dataclasses.asdict(self.model)
        text = json.dumps(payload, sort_keys=True, default=dataclasses.asdict)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def target_modules(recipe: Recipe, model_type: str) -> list[str] | str:
    """The LoRA target modules: the recipe's, else the defaults for this ``model_type``."""
    if recipe.lora.target_modules:
        return list(recipe.lora.target_modules)
    known = DEFAULT_TARGETS.get(model_type)
    return list(known) if known else ALL_LINEAR


def load_recipe(path: Path | None) -> Recipe:
    """The recipe in ``path`` (``.toml`` or ``.json``) over the defaults; None: the defaults."""
    if path is None:
        return Recipe()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RecipeError(f"recipe file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe file {path}: {exc}") from exc
    try:
        raw: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    recipe = parse_recipe(raw, str(path))
    template = recipe.model.chat_template
    if template and template.lower() not in builtin_names() and not Path(template).is_absolute():
        # A template file is named relative to the recipe, wherever the command runs from.
        resolved = str((path.parent / Path(template).expanduser()).resolve())
        recipe = dataclasses.replace(recipe, model=ModelSettings(chat_template=resolved))
    return recipe


def parse_recipe(raw: Any, source: str = "recipe") -> Recipe:
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{source}: expected a table of sections")
    sections = {f.name: f for f in fields(Recipe)}
    values: dict[str, Any] = {}
    for name, table in raw.items():
        if name not in sections:
            known = ", ".join(sections)
            raise RecipeError(f"{source}: unknown section [{name}] (sections: {known})")
        if not isinstance(table, Mapping):
            raise RecipeError(f"{source}: [{name}] must be a table")
        default = getattr(Recipe(), name)
        values[name] = _parse_section(default, table, f"{source}: [{name}]")
    recipe = Recipe(**values)
    validate(recipe, source)
    return recipe


def _parse_section(default: Any, table: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(default)}
    updates: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise RecipeError(f"{where}.{key}: unknown key (keys: {', '.join(known)})")
        updates[key] = _coerce(getattr(default, key), value, f"{where}.{key}")
    return dataclasses.replace(default, **updates)


def _coerce(default: Any, value: Any, where: str) -> Any:
    # The default's type is the field's type (no field has a None default).
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, tuple):
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        raise RecipeError(f"{where}: expected a list of names")
    raise RecipeError(f"{where}: expected {type(default).__name__}, got {type(value).__name__}")


def validate(recipe: Recipe, source: str) -> None:
    template = recipe.model.chat_template.strip()
    if template and template.lower() not in builtin_names() and not template.endswith(".jinja"):
        raise RecipeError(
            f"{source}: [model].chat_template must be a built-in template "
            f"({', '.join(builtin_names())}) or a .jinja file, not {template!r}"
        )
    lora, train, data, export, ev = (
        recipe.lora,
        recipe.train,
        recipe.data,
        recipe.export,
        recipe.eval,
    )
    checks: list[tuple[bool, str]] = [
        (lora.r >= 1, "[lora].r must be at least 1"),
        (lora.alpha > 0, "[lora].alpha must be positive"),
        (0 <= lora.dropout < 1, "[lora].dropout must be in [0, 1)"),
        (train.learning_rate > 0, "[train].learning_rate must be positive"),
        (train.epochs >= 1, "[train].epochs must be at least 1"),
        (train.max_steps >= 0, "[train].max_steps must be 0 (use epochs) or more"),
        (train.batch_size >= 1, "[train].batch_size must be at least 1"),
        (train.grad_accum >= 1, "[train].grad_accum must be at least 1"),
        (train.max_length >= 64, "[train].max_length must be at least 64 tokens"),
        (0 <= train.warmup_ratio < 1, "[train].warmup_ratio must be in [0, 1)"),
        (0 <= train.min_lr_ratio <= 1, "[train].min_lr_ratio must be in [0, 1]"),
        (train.weight_decay >= 0, "[train].weight_decay must not be negative"),
        (train.max_grad_norm > 0, "[train].max_grad_norm must be positive"),
        (train.checkpoint_every >= 1, "[train].checkpoint_every must be at least 1"),
        (train.keep_checkpoints >= 1, "[train].keep_checkpoints must be at least 1"),
        (train.device in ("auto", "cpu", "cuda"), "[train].device must be auto, cpu or cuda"),
        (train.threads >= 0, "[train].threads must be 0 (all cores) or more"),
        (
            train.cpu_precision in ("auto", "bf16", "fp32"),
            "[train].cpu_precision must be auto, bf16 or fp32",
        ),
        (0 <= data.eval_fraction <= 0.5, "[data].eval_fraction must be in [0, 0.5]"),
        (data.eval_max >= 0, "[data].eval_max must not be negative"),
        (
            export.quant in QTYPES,
            f"[export].quant must be one of {', '.join(QTYPES)}, not {export.quant!r}",
        ),
        (ev.max_tokens >= 1, "[eval].max_tokens must be at least 1"),
        (ev.n_ctx == 0 or ev.n_ctx >= 256, "[eval].n_ctx must be 0 (max_length) or >= 256"),
    ]
    for ok, message in checks:
        if not ok:
            raise RecipeError(f"{source}: {message}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")
