"""A GGUF file as a fine-tuning base: turned into a Hugging Face folder once, checked, cached.

transformers reads a GGUF (``from_pretrained(dir, gguf_file=...)``) and de-quantizes its weights,
which gives a model to train from. Two things it does not get right by itself, and both would only
show after hours of training:

- the tokenizer's pre-tokenizer: transformers rebuilds a byte-level BPE tokenizer as plain GPT-2,
  while llama.cpp splits text by the GGUF's ``tokenizer.ggml.pre`` rules (SmolLM2 splits every
  digit). Trained on one tokenization and run with another, the model sees numbers it never saw.
  The folder gets the pre-tokenizer llama.cpp uses, and the result is checked token for token
  against llama.cpp's own tokenizer reading the same GGUF;
- saving: a model loaded from a GGUF is flagged as quantized and refuses ``save_pretrained``; it is
  saved from its de-quantized float weights instead.

A GGUF without a chat template (a base model such as Gemma-3-270M) is refused unless the recipe
supplies one (``[model] chat_template``); the folder's tokenizer then carries that template, and the
pipeline checks that the prompts it renders are, token for token, the prompts the app's engine
renders from the same GGUF (``export.prompt_agreement``).

The folder is keyed by the GGUF's SHA-256 (and the supplied template's), so a second run reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from almanac.core.system.hashing import sha256_file
from almanac.finetune.errors import BaseModelError

MARKER = "almanac-gguf-base.json"
# Texts that tell pre-tokenizers apart: digits, contractions, code, whitespace runs, non-ASCII,
# the chat markup and citation markers the app's prompts are full of.
PROBES = (
    "Port 47310/UDP and 47311/TCP; version 3.14.2 (2024-11-05), error E-1042, 1,250.00 EUR.",
    "I'm sure you'll find it's what we'd've wanted: don't   stop\n\n\tnow  ",
    "def f(x):\n    return x**2  # 100% über-naïve café, 東京, emoji 🙂\n",
    "<|im_start|>system\nSources:\n\n[1] faq.md - Billing\nRefunds take 14 days.<|im_end|>\n",
    "Go to Settings > Account > Password [1][2]. It expires after 30 minutes [3].",
)


def _pre_tokenizer(name: str) -> Any | None:
    """The Hugging Face pre-tokenizer that splits text as llama.cpp's ``name`` rules do, or None
    when the rules are unknown here (the token-for-token check then decides)."""
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if name in ("gpt2", "gpt-2"):
        return byte_level
    if name in ("smollm", "starcoder", "refact", "codeshell", "command-r"):
        # llama.cpp: "\p{N}" first (each digit on its own), then the GPT-2 regex.
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if name in ("llama-bpe", "llama3", "qwen2", "deepseek-r1-qwen"):
        split = (
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
            if name.startswith("qwen") or name.startswith("deepseek")
            else r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
        )
        pattern = split + r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    return None


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The GGUF's scalar and string metadata (no arrays: the vocabulary is large)."""
    from gguf.gguf_reader import GGUFReader

    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot read {path.name} as GGUF: {exc}") from exc
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.endswith(("tokens", "merges", "token_type")):
            continue
        with contextlib.suppress(Exception):
            value = field.contents()
            if isinstance(value, str | int | float | bool):
                out[key] = value
    return out


def default_cache() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("Almanac", appauthor=False) / "gguf-bases"


def hf_folder_from_gguf(
    gguf: Path,
    cache: Path | None = None,
    say: Callable[[str], None] | None = None,
    chat_template: str | None = None,
) -> Path:
    """The Hugging Face folder for ``gguf`` (made on first use; reused by SHA-256).

    ``chat_template``: the Jinja text the recipe supplies (``[model] chat_template``), used only
    when the GGUF carries no template of its own (a base model); the folder's tokenizer gets it,
    so training renders with it and a merged export carries it."""
    if not gguf.is_file():
        raise BaseModelError(f"base model file not found: {gguf}")
    cache = cache or default_cache()
    digest = sha256_file(gguf)
    meta = gguf_metadata(gguf)
    if meta.get("general.type", "model") != "model":
        raise BaseModelError(f"{gguf.name} is a {meta['general.type']} GGUF, not a model")
    own = meta.get("tokenizer.chat_template")
    if not own and not chat_template:
        raise BaseModelError(
            f"{gguf.name} carries no chat template (tokenizer.chat_template): fine-tune an "
            'instruct/chat model, or name one in the recipe ([model] chat_template = "gemma" '
            "or a .jinja file)"
        )
    supplied = None if own else chat_template
    # A folder per template: the same base trained with another template is another folder.
    tag = "" if supplied is None else "-t" + hashlib.sha256(supplied.encode()).hexdigest()[:8]
    folder = cache / f"{gguf.stem}-{digest[:16]}{tag}"
    if (folder / MARKER).is_file():
        return folder
    if say:
        say(f"turning {gguf.name} into a Hugging Face model folder (once)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=cache))
    try:
        info = _convert(gguf, meta, tmp, supplied)
        info.update({"source": str(gguf.resolve()), "sha256": digest})
        (tmp / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _convert(
    gguf: Path, meta: dict[str, Any], out: Path, chat_template: str | None = None
) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from almanac.core.system.offline import enforce_offline_env

    enforce_offline_env()
    where, name = str(gguf.parent), gguf.name
    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(where, gguf_file=name)
        auto: Any = AutoModelForCausalLM
        model = auto.from_pretrained(where, gguf_file=name, dtype="float32")
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise BaseModelError(f"transformers cannot load {name}: {exc}") from exc
    pre = str(meta.get("tokenizer.ggml.pre") or "")
    if meta.get("tokenizer.ggml.model") == "gpt2":
        replacement = _pre_tokenizer(pre)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if replacement is not None and backend is not None:
            backend.pre_tokenizer = replacement
    # The GGUF's own template, else the recipe's: transformers may have made up another one.
    tokenizer.chat_template = meta.get("tokenizer.chat_template") or chat_template
    same, total = _agreement(tokenizer, gguf)
    if same != total:
        raise BaseModelError(
            f"the tokenizer transformers made from {name} splits text differently from llama.cpp "
            f"(pre-tokenizer {pre or 'unknown'!r}: {total - same} of {total} probe texts differ); "
            "training on it would teach token sequences the app never produces"
        )
    tokenizer.save_pretrained(str(out))
    _save_weights(model, out)
    return {
        "pre_tokenizer": pre,
        "tokenizer_agreement": [same, total],
        "chat_template": "gguf" if meta.get("tokenizer.chat_template") else "recipe",
    }


def _agreement(tokenizer: Any, gguf: Path) -> tuple[int, int]:
    from almanac.finetune.export import tokenizer_agreement

    probe_chat = tokenizer.apply_chat_template(
        [{"role": "system", "content": PROBES[4]}, {"role": "user", "content": PROBES[0]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    return tokenizer_agreement(tokenizer, gguf, [*PROBES, str(probe_chat)])


def _save_weights(model: Any, out: Path) -> None:
    # Loaded from a GGUF, the model is flagged as quantized and refuses save_pretrained; its
    # weights are plain de-quantized floats by now, so the flag is dropped before saving.
    model.hf_quantizer = None
    for flag in ("is_quantized", "_is_quantized_training_enabled"):
        if hasattr(model, flag):
            with contextlib.suppress(AttributeError):
                setattr(model, flag, False)
    config = model.config
    if hasattr(config, "quantization_config"):
        with contextlib.suppress(AttributeError):
            del config.quantization_config
    if not config.architectures:
        config.architectures = [type(model).__name__]
    model.save_pretrained(str(out), safe_serialization=True)
