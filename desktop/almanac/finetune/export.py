"""From a trained adapter to files llama.cpp loads: merged GGUF, or a LoRA adapter GGUF.

Merged: base + adapter merged in the base's dtype, saved as a Hugging Face folder (with the base's
tokenizer and chat template), converted to F16 GGUF by llama.cpp's converter, quantized by
``llama_cpp.llama_model_quantize`` and checked (``verify_quantized``: the matrices really are the
requested type, not silently left in F16). Adapter: ``convert_lora_to_gguf.py`` from the same
source distribution, checked by loading it with ``llama_cpp.Llama(lora_path=...)``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.core.llm.llama_log import route_llama_log, take_errors
from almanac.core.system.hashing import sha256_file
from almanac.finetune import converter
from almanac.finetune.base_model import is_weight_file
from almanac.tooling import gguf_export


@dataclass(frozen=True, slots=True)
class ExportedFile:
    path: Path
    kind: str  # "model" or "lora-adapter"
    quantization: str  # "Q4_K_M", "Q8_0", "F16"
    size_bytes: int
    sha256: str
    tensor_types: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "quantization": self.quantization,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "tensor_types": self.tensor_types,
        }


def merge_adapter(base_dir: Path, adapter_dir: Path, merged_dir: Path) -> Path:
    """Base weights + LoRA, merged and saved with the base's tokenizer files beside them."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # The base's own dtype (usually bf16): merging in float32 would double the memory of 3B.
    auto: Any = AutoModelForCausalLM
    base = auto.from_pretrained(str(base_dir), dtype="auto")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    merged.save_pretrained(str(merged_dir), safe_serialization=True)
    for item in base_dir.iterdir():
        target = merged_dir / item.name
        if item.is_file() and not is_weight_file(item.name) and not target.exists():
            shutil.copy2(item, target)  # tokenizer, chat template, generation config, licence
    return merged_dir


def export_gguf(model_dir: Path, out: Path, qtype: str, *, cache: Path, work: Path) -> ExportedFile:
    """Convert ``model_dir`` to GGUF and quantize it to ``qtype``; verify; hash."""
    work.mkdir(parents=True, exist_ok=True)
    f16 = work / f"{out.stem}.f16.gguf"
    gguf_export.convert_hf_to_gguf(model_dir, f16, "f16", cache=cache)
    if qtype.upper() == "F16":
        os.replace(f16, out)
    else:
        gguf_export.quantize(f16, out, qtype)
        f16.unlink(missing_ok=True)
    gguf_export.verify_quantized(out, qtype)
    return describe(out, "model", qtype.upper())


def preflight_export(
    base_dir: Path, recipe: Any, model_type: str, *, adapter: bool, cache: Path
) -> None:
    """Run, on the untrained base, the conversion that export will run after training: the
    vocabulary (llama.cpp's converter recognises the tokenizer's pre-tokenizer, finds the
    SentencePiece model, ...) or, for an adapter, a freshly initialised LoRA adapter with the
    recipe's target modules. Raises :class:`gguf_export.ExportError` with the converter's words."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="almanac-preflight-") as tmp:
        work = Path(tmp)
        if not adapter:
            gguf_export.convert_hf_to_gguf(
                base_dir, work / "vocab.gguf", "f16", cache=cache, vocab_only=True
            )
            return
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        from almanac.finetune.recipe import target_modules

        auto: Any = AutoModelForCausalLM
        model = auto.from_pretrained(str(base_dir), dtype="auto")
        config = LoraConfig(
            r=recipe.lora.r,
            lora_alpha=recipe.lora.alpha,
            target_modules=target_modules(recipe, model_type),
            task_type="CAUSAL_LM",
        )
        get_peft_model(model, config).save_pretrained(str(work / "adapter"))
        del model
        converter.convert_lora_to_gguf(
            work / "adapter", base_dir, work / "adapter.gguf", cache=cache, outtype="f16"
        )


def export_adapter_gguf(
    adapter_dir: Path, base_dir: Path, out: Path, *, cache: Path
) -> ExportedFile:
    converter.convert_lora_to_gguf(adapter_dir, base_dir, out, cache=cache, outtype="f16")
    return describe(out, "lora-adapter", "F16")


def describe(path: Path, kind: str, quantization: str) -> ExportedFile:
    return ExportedFile(
        path=path,
        kind=kind,
        quantization=quantization,
        size_bytes=path.stat().st_size,
        sha256=sha256_file(path),
        tensor_types=gguf_export.tensor_types(path),
    )


def check_adapter_loads(
    base_gguf: Path, adapter_gguf: Path, prompt: str, *, n_ctx: int = 2048
) -> tuple[str, str]:
    """Greedy continuations of ``prompt`` without and with the adapter (llama.cpp's runtime LoRA).

    Raises :class:`gguf_export.ExportError` when llama.cpp refuses the adapter.
    """
    import llama_cpp

    # llama.cpp aborts the process on a file that is not a LoRA adapter: check first.
    kind = _gguf_string(adapter_gguf, "general.type"), _gguf_string(adapter_gguf, "adapter.type")
    if kind != ("adapter", "lora"):
        raise gguf_export.ExportError(f"{adapter_gguf.name} is not a LoRA adapter GGUF ({kind})")
    outputs: list[str] = []
    for lora in (None, adapter_gguf):
        kwargs: dict[str, Any] = {"lora_path": str(lora)} if lora is not None else {}
        # llama.cpp's log goes to Python logging (llama_log); its errors say why a load failed.
        route_llama_log()
        take_errors()
        try:
            llm = llama_cpp.Llama(
                model_path=str(base_gguf), n_ctx=n_ctx, verbose=False, seed=0, **kwargs
            )
        except (ValueError, RuntimeError) as exc:
            what = f"the adapter {adapter_gguf.name}" if lora else f"the base {base_gguf.name}"
            detail = "; ".join(take_errors()[:2]) or "llama.cpp logged no error"
            raise gguf_export.ExportError(
                f"llama.cpp could not load {what}: {exc} ({detail})"
            ) from exc
        try:
            # The prompt as the chat path tokenizes it: special tokens parsed, and BOS once (a
            # template that writes BOS itself, as Gemma's does, gets no second one).
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            bos = llm.tokenize(b"", add_bos=True, special=True)  # [BOS] where the model adds one
            tokens = (bos if tokens[: len(bos)] != bos else []) + tokens
            result: Any = llm.create_completion(tokens, max_tokens=48, temperature=0.0)
            outputs.append(str(result["choices"][0]["text"]))
        finally:
            llm.close()
    return outputs[0], outputs[1]


def _gguf_string(path: Path, key: str) -> str | None:
    from gguf.gguf_reader import GGUFReader

    try:
        field = GGUFReader(path).fields.get(key)
    except (OSError, ValueError) as exc:
        raise gguf_export.ExportError(f"cannot read GGUF {path}: {exc}") from exc
    value = field.contents() if field is not None else None
    return value if isinstance(value, str) else None


def tokenizer_agreement(tokenizer: Any, gguf: Path, texts: Sequence[str]) -> tuple[int, int]:
    """(agreeing, total): texts that llama.cpp's tokenizer (from the GGUF) and the Hugging Face
    tokenizer used for training turn into the same ids. A difference means the model sees
    slightly different prompts at run time than it was trained on."""
    with _vocab(gguf) as vocab:
        same = 0
        for text in texts:
            theirs = _llama_ids(vocab, text, add_special=False)
            ours = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
            same += theirs is not None and ours == theirs
        return same, len(texts)


@dataclass(frozen=True, slots=True)
class PromptAgreement:
    same: int
    total: int
    template: str  # where the app's template comes from: "gguf", "gemma", "guessed: gemma", ...
    first_difference: str | None  # the first prompt that differs, both renderings, shortened

    @property
    def ok(self) -> bool:
        return self.same == self.total


def prompt_agreement(
    tokenizer: Any,
    gguf: Path,
    conversations: Sequence[Sequence[Any]],
    *,
    chat_format: str | None = None,
    gguf_template: str | None = None,
) -> PromptAgreement:
    """Whether training and the app ask the model the same way: for each conversation (a list of
    ``ChatMessage``), the prompt before its last assistant turn as training renders and tokenizes
    it (the tokenizer's chat template, :func:`encoding.token_ids`), against the prompt the app's
    engine renders from ``gguf`` (the template ``choose_chat_template`` picks for the file, or
    ``gguf_template`` where the file will carry that one, e.g. a merged export; ``chat_format``
    for a file without one) with llama-cpp-python's ``Jinja2ChatFormatter`` and tokenizes with
    llama.cpp, as ``create_chat_completion`` does (BOS only where the template writes it)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from almanac.core.llm.chat_templates import choose_chat_template
    from almanac.finetune.encoding import render, token_ids
    from almanac.finetune.gguf_base import gguf_metadata

    own = gguf_template or gguf_metadata(gguf).get("tokenizer.chat_template")
    with _vocab(gguf) as vocab:
        import llama_cpp

        def text_of(token: int) -> str:
            raw = llama_cpp.llama_vocab_get_text(vocab, token) if token >= 0 else b""
            return raw.decode("utf-8", "replace") if raw else ""

        def is_control(text: str) -> bool:
            ids = _llama_ids(vocab, text, add_special=False)
            return ids is not None and len(ids) == 1

        choice = choose_chat_template(own, chat_format, is_control)
        formatter = Jinja2ChatFormatter(
            choice.template,
            text_of(int(llama_cpp.llama_vocab_eos(vocab))),
            text_of(int(llama_cpp.llama_vocab_bos(vocab))),
        )
        same, first = 0, None
        for messages in conversations:
            last = max(i for i, m in enumerate(messages) if m.role == "assistant")
            prompt = list(messages[:last])
            ours_text = render(tokenizer, prompt, add_generation_prompt=True)
            ours = token_ids(tokenizer, ours_text)
            response = formatter(messages=[{"role": m.role, "content": m.content} for m in prompt])
            theirs = _llama_ids(vocab, response.prompt, add_special=not response.added_special)
            if ours == theirs:
                same += 1
            elif first is None:
                first = f"training {ours_text[:160]!r} vs app {response.prompt[:160]!r}"
        return PromptAgreement(same, len(conversations), choice.source, first)


@contextlib.contextmanager
def _vocab(gguf: Path) -> Iterator[Any]:
    """llama.cpp's vocabulary of ``gguf`` (no weights, no context)."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    route_llama_log()  # llama.cpp describes the whole vocabulary while loading it: debug records
    model = llama_cpp.llama_model_load_from_file(str(gguf).encode("utf-8"), params)
    if not model:
        raise gguf_export.ExportError(f"llama.cpp could not read the vocabulary of {gguf.name}")
    try:
        yield llama_cpp.llama_model_get_vocab(model)
    finally:
        llama_cpp.llama_model_free(model)


def _llama_ids(vocab: Any, text: str, *, add_special: bool) -> list[int] | None:
    """llama.cpp's token ids for ``text`` (special tokens parsed), or None when it fails."""
    import llama_cpp

    data = text.encode("utf-8")
    room = len(data) + 16
    buf = (llama_cpp.llama_token * room)()
    n = int(llama_cpp.llama_tokenize(vocab, data, len(data), buf, room, add_special, True))
    return [int(t) for t in buf[:n]] if n >= 0 else None


def write_sha256(files: Sequence[ExportedFile], path: Path) -> Path:
    """``sha256sum -c`` format, names relative to the file's folder."""
    lines = [f"{f.sha256}  {os.path.relpath(f.path, path.parent)}\n" for f in files]
    path.write_text("".join(lines), encoding="utf-8")
    return path
