"""The whole recipe, as ``almanac finetune`` runs it: check, train, export, evaluate, register.

Everything that can be checked cheaply is checked before training starts: the recipe, the base
model folder and its architecture against llama.cpp's converter, every line of the data, token
lengths. Output folder layout::

    OUT/<name>-<quant>.gguf      the fine-tuned model (or <name>-lora-f16.gguf, --adapter-only)
    OUT/<name>-<quant>.gguf.sha256, OUT/MODEL_CARD.md, OUT/report.md, OUT/report.json
    OUT/finetune.json            every figure of the run
    OUT/recipe.toml              the effective recipe
    OUT/data/train.jsonl, OUT/data/heldout.jsonl
    OUT/adapter/                 the LoRA adapter (PEFT format)
    OUT/checkpoints/             for --resume
    OUT/work/                    merged model and base GGUF (removed unless keep_intermediate)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from almanac.core.embedding.embedding import Embedder
from almanac.core.llm.base import ChatMessage
from almanac.core.llm.chat_templates import ChatTemplateError, builtin_names, load_chat_template
from almanac.core.llm.gguf_file import inspect_gguf
from almanac.finetune import data as fdata
from almanac.finetune.base_model import inspect_base_model
from almanac.finetune.card import keep_added_sections, model_card
from almanac.finetune.converter import supported_architectures
from almanac.finetune.encoding import encode_conversation, load_tokenizer, render
from almanac.finetune.errors import BaseModelError, RecipeError
from almanac.finetune.evaluate import ExampleResult, Scores, evaluate_gguf, write_report
from almanac.finetune.export import (
    ExportedFile,
    PromptAgreement,
    check_adapter_loads,
    describe,
    export_adapter_gguf,
    export_gguf,
    merge_adapter,
    preflight_export,
    prompt_agreement,
    tokenizer_agreement,
    write_sha256,
)
from almanac.finetune.gguf_base import PROBES, hf_folder_from_gguf
from almanac.finetune.recipe import Recipe, load_recipe, target_modules
from almanac.finetune.train import StepCallback, train_lora
from almanac.tooling import gguf_export

Say = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneOptions:
    base: Path
    data: Path
    out: Path
    quant: str | None = None  # overrides the recipe's [export].quant
    max_steps: int | None = None  # overrides [train].max_steps
    adapter_only: bool = False
    recipe: Path | None = None
    resume: bool = False
    evaluate: bool = True
    register: bool = True
    user_catalog: Path | None = None  # None: the default user catalog
    converter_cache: Path | None = None  # None: default_converter_cache()
    embedder: Embedder | None = None  # None: the bundled MiniLM, loaded when evaluating
    keep_intermediate: bool = False
    progress: bool = True
    on_step: StepCallback | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class FinetuneResult:
    output: Path  # the GGUF written: the model, or the adapter with --adapter-only
    files: list[ExportedFile]
    scores: tuple[Scores, Scores] | None
    summary: dict[str, Any]


def default_converter_cache() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("Almanac", appauthor=False) / "llama.cpp"


def _stderr(message: str) -> None:
    print(f"finetune: {message}", file=sys.stderr, flush=True)


def run(options: FinetuneOptions, say: Say = _stderr) -> FinetuneResult:
    recipe = load_recipe(options.recipe).with_overrides(
        quant=options.quant, max_steps=options.max_steps
    )
    qtype = recipe.export.quant
    conversations = fdata.load_jsonl(options.data)  # a bad line fails before anything slow
    template = _recipe_template(recipe)
    base_gguf: Path | None = None
    if options.base.suffix.lower() == ".gguf":
        base_gguf = options.base
        folder = hf_folder_from_gguf(options.base, say=say, chat_template=template)
        options = dataclasses.replace(options, base=folder)
    info = inspect_base_model(options.base)
    cache = options.converter_cache or default_converter_cache()
    src = gguf_export.converter_dir(cache)
    info = inspect_base_model(options.base, supported_architectures(src))
    say("checking that the result will export (llama.cpp's converter, before training)")
    preflight_export(
        options.base, recipe, info.model_type, adapter=options.adapter_only, cache=cache
    )
    say(
        f"base {info.architecture} ({_millions(info.parameters)}), "
        f"{len(conversations)} conversations in {options.data.name}"
    )

    tokenizer = load_tokenizer(options.base)
    encoded = {c.line: encode_conversation(tokenizer, c.messages) for c in conversations}
    prompts: PromptAgreement | None = None
    if base_gguf is not None:
        prompts = _check_prompts(tokenizer, base_gguf, recipe, conversations, options, say)
    counts = fdata.check_lengths(
        conversations,
        options.data,
        lambda c: len(encoded[c.line].input_ids),
        recipe.train.max_length,
        info.context_length,
    )
    count_of = dict(zip((c.line for c in conversations), counts, strict=True))
    train, heldout = fdata.split_heldout(
        conversations, recipe.data.eval_fraction, recipe.data.eval_max, recipe.train.seed
    )
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    fdata.write_jsonl(out / "data" / "train.jsonl", train)
    fdata.write_jsonl(out / "data" / "heldout.jsonl", heldout)
    (out / "recipe.toml").write_text(recipe.to_toml(), encoding="utf-8")
    data_sha = fdata.file_sha256(options.data)
    data_info = {
        "path": str(options.data),
        "sha256": data_sha,
        "train": fdata.stats(train, [count_of[c.line] for c in train]).to_json(),
        "heldout": fdata.stats(heldout, [count_of[c.line] for c in heldout]).to_json(),
    }
    say(
        f"{len(train)} for training, {len(heldout)} held out; "
        f"longest {max(counts)} tokens (limit {recipe.train.max_length})"
    )

    fingerprint = _fingerprint(recipe, data_sha, options.base, heldout)
    result = train_lora(
        options.base,
        [encoded[c.line] for c in train],
        recipe,
        out,
        fingerprint=fingerprint,
        model_type=info.model_type,
        resume=options.resume,
        progress=options.progress,
        on_step=options.on_step,
    )
    notes = list(result.notes)
    say(
        f"trained {result.steps} steps on {result.device} in {result.seconds:.0f} s, "
        f"loss {_loss(result.losses[0][1] if result.losses else None)} -> "
        f"{_loss(result.final_loss)}"
    )
    training = {
        **result.to_json(),
        "target_modules": _targets(recipe, info.model_type),
    }

    name = recipe.export.name or f"{options.base.name}-support"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"
    work = out / "work"
    files: list[ExportedFile] = []
    scores: tuple[Scores, Scores] | None = None
    details: tuple[list[ExampleResult], list[ExampleResult]] | None = None
    agreement: tuple[int, int] | None = None
    if options.adapter_only:
        if base_gguf is not None:  # the adapter goes with the very file it was trained from
            quantization = inspect_gguf(base_gguf).quantization or "unknown"
            base_file = describe(base_gguf, "model", quantization)
        else:
            say(f"converting the base model to GGUF ({qtype}), for use with the adapter")
            base_file = export_gguf(
                options.base, out / f"base-{qtype}.gguf", qtype, cache=cache, work=work
            )
        say("converting the LoRA adapter to GGUF")
        adapter = export_adapter_gguf(
            result.adapter_dir, options.base, out / f"{slug}-lora-f16.gguf", cache=cache
        )
        sample = heldout[0] if heldout else train[0]
        prompt = render(tokenizer, sample.messages[:-1], add_generation_prompt=True)
        plain, adapted = check_adapter_loads(base_file.path, adapter.path, prompt)
        say("llama.cpp loads the adapter (lora_path)")
        if plain == adapted:
            notes.append("the adapter did not change the greedy answer to the sample prompt")
        notes.append(
            "evaluation skipped with --adapter-only: the app's engine loads merged GGUF files"
        )
        notes.append("not registered in the model catalog: an adapter is not a model file")
        files = [adapter, base_file]
        output = adapter.path
        training["adapter_check"] = {"prompt_line": sample.line, "base": plain, "lora": adapted}
    else:
        say("merging the adapter into the base model")
        merged = merge_adapter(options.base, result.adapter_dir, work / "merged")
        say(f"converting to GGUF and quantizing to {qtype}")
        model_file = export_gguf(
            merged, out / f"{slug}-{qtype}.gguf", qtype, cache=cache, work=work
        )
        files = [model_file]
        output = model_file.path
        texts = [render(tokenizer, c.messages, add_generation_prompt=False) for c in train[:20]]
        agreement = tokenizer_agreement(tokenizer, output, texts)
        if agreement[0] != agreement[1]:
            notes.append(
                f"llama.cpp tokenizes {agreement[1] - agreement[0]} of {agreement[1]} training "
                "conversations differently from the training tokenizer"
            )
        exported = prompt_agreement(tokenizer, output, [c.messages for c in train[:20]])
        if not exported.ok:
            notes.append(
                f"the app's engine renders {exported.total - exported.same} of {exported.total} "
                f"training prompts differently ({exported.template} template): "
                f"{exported.first_difference}"
            )
        if options.evaluate and recipe.eval.enabled and heldout:
            scores, details = _evaluate(
                options, recipe, info.context_length, heldout, output, cache, work, say
            )
        elif options.evaluate and recipe.eval.enabled:
            notes.append("evaluation skipped: no held-out conversations ([data].eval_fraction)")
        else:
            notes.append("evaluation skipped (disabled)")

    versions = _versions()
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "name": name,
        "created": created,
        "output": str(output),
        "base": info.to_json(),
        "data": data_info,
        "recipe": recipe.to_json(),
        "training": training,
        "files": [f.to_json() for f in files],
        "tokenizer_agreement": list(agreement) if agreement else None,
        "prompt_agreement": (
            {
                "same": prompts.same,
                "total": prompts.total,
                "app_template": prompts.template,
                "recipe_template": recipe.model.chat_template or None,
            }
            if prompts
            else None
        ),
        "evaluation": (
            {"before": scores[0].to_json(), "after": scores[1].to_json()} if scores else None
        ),
        "versions": versions,
        "notes": notes,
    }
    if scores is not None and details is not None:
        write_report(out, *scores, *details, {"name": name})
    card = out / "MODEL_CARD.md"
    previous = card.read_text(encoding="utf-8") if card.exists() else ""
    card.write_text(
        keep_added_sections(
            previous,
            model_card(
                name=name,
                base=info.to_json(),
                data=data_info,
                recipe=recipe,
                training=training,
                files=files,
                scores=scores,
                notes=notes,
                versions=versions,
            ),
        ),
        encoding="utf-8",
    )
    write_sha256(files, output.with_name(output.name + ".sha256"))
    if options.register and not options.adapter_only:
        from almanac.app.environment import user_catalog_path
        from almanac.core.llm.catalog import UserModel, register_user_model

        catalog = register_user_model(
            UserModel(
                name=name,
                path=str(output.resolve()),
                sha256=files[0].sha256,
                size_bytes=files[0].size_bytes,
                quantization=qtype,
                context_length=info.context_length,
                base_model=str(options.base.resolve()),
                model_card=str(card.resolve()),
                created=created,
            ),
            options.user_catalog or user_catalog_path(),
        )
        summary["catalog"] = str(catalog)
        say(f"registered in {catalog}")
    (out / "finetune.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if not options.keep_intermediate:
        shutil.rmtree(work, ignore_errors=True)
    return FinetuneResult(output=output, files=files, scores=scores, summary=summary)


def _recipe_template(recipe: Recipe) -> str | None:
    """The Jinja text of the recipe's ``[model] chat_template``, or None when it names none."""
    spec = recipe.model.chat_template
    if not spec:
        return None
    try:
        return load_chat_template(spec)
    except ChatTemplateError as exc:
        raise RecipeError(f"[model].chat_template: {exc}") from exc


# A conversation shaped like the app's (system prompt with numbered sources, a follow-up), for the
# prompt check beside the training data's own.
_PROBE_CONVERSATION = (
    ChatMessage("system", "Answer from the sources.\n\nSources:\n\n[1] faq.md\n" + PROBES[2]),
    ChatMessage("user", PROBES[0]),
    ChatMessage("assistant", PROBES[4]),
    ChatMessage("user", " " + PROBES[1]),
    ChatMessage("assistant", "I couldn't find that in your documents."),
)


def _check_prompts(
    tokenizer: Any,
    base_gguf: Path,
    recipe: Recipe,
    conversations: list[fdata.Conversation],
    options: FinetuneOptions,
    say: Say,
) -> PromptAgreement:
    """Before training: the prompts training renders are the ones the app will render, token for
    token. A merged export carries the training tokenizer's template into its GGUF; an adapter
    runs on ``base_gguf`` as it is, with its own template or, for a file without one, the
    built-in the recipe names (the default model's manifest names it as "chat_format")."""
    spec = recipe.model.chat_template.lower()
    named = spec if spec in builtin_names() else None
    sample = [_PROBE_CONVERSATION, *(c.messages for c in conversations[:8])]
    if options.adapter_only:
        agreement = prompt_agreement(tokenizer, base_gguf, sample, chat_format=named)
    else:
        own = str(tokenizer.chat_template)
        agreement = prompt_agreement(tokenizer, base_gguf, sample, gguf_template=own)
    if not agreement.ok:
        hint = (
            " (an adapter on a base GGUF without a template runs with a built-in template: "
            f"name one of {', '.join(builtin_names())} in [model].chat_template)"
            if options.adapter_only and spec and named is None
            else ""
        )
        differ = agreement.total - agreement.same
        raise BaseModelError(
            f"the app would prompt the model differently from training: {differ} of "
            f"{agreement.total} prompts differ ({agreement.template} template at run time)"
            f"{hint}; first: {agreement.first_difference}"
        )
    say(
        f"prompts: training and the app's engine ({agreement.template} template) agree token "
        f"for token on {agreement.same} of {agreement.total}"
    )
    if options.adapter_only and agreement.template not in ("gguf",):
        say(
            f"{base_gguf.name} has no chat template of its own: load it with "
            f'chat_format="{agreement.template.removeprefix("guessed: ")}" '
            '(a default-model manifest\'s "chat_format")'
        )
    return agreement


def _evaluate(
    options: FinetuneOptions,
    recipe: Recipe,
    context: int | None,
    heldout: list[fdata.Conversation],
    tuned: Path,
    cache: Path,
    work: Path,
    say: Say,
) -> tuple[tuple[Scores, Scores], tuple[list[ExampleResult], list[ExampleResult]]]:
    qtype = recipe.export.quant
    say(f"converting the base model to GGUF ({qtype}) for the before/after evaluation")
    base_file = export_gguf(
        options.base, work / f"base-{qtype}.gguf", qtype, cache=cache, work=work
    )
    embedder = options.embedder
    if embedder is None:
        from almanac.core.embedding.embedding import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
    n_ctx = recipe.eval.n_ctx or recipe.train.max_length + recipe.eval.max_tokens
    if context is not None:
        n_ctx = min(n_ctx, context)
    threads = recipe.train.threads or None
    say(f"evaluating the base model on {len(heldout)} held-out conversations")
    before, before_results = evaluate_gguf(
        base_file.path,
        heldout,
        embedder,
        n_ctx=n_ctx,
        max_tokens=recipe.eval.max_tokens,
        label="base",
        threads=threads,
    )
    say("evaluating the fine-tuned model")
    after, after_results = evaluate_gguf(
        tuned,
        heldout,
        embedder,
        n_ctx=n_ctx,
        max_tokens=recipe.eval.max_tokens,
        label="fine-tuned",
        threads=threads,
    )
    return (before, after), (before_results, after_results)


def _fingerprint(
    recipe: Recipe, data_sha: str, base: Path, heldout: list[fdata.Conversation]
) -> str:
    digest = hashlib.sha256()
    digest.update(recipe.training_fingerprint().encode())
    digest.update(data_sha.encode())
    digest.update((base / "config.json").read_bytes())
    digest.update(json.dumps([c.line for c in heldout]).encode())
    return digest.hexdigest()[:16]


def _targets(recipe: Recipe, model_type: str) -> list[str]:
    targets = target_modules(recipe, model_type)
    return [targets] if isinstance(targets, str) else targets


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("almanac", "llama-cpp-python", "transformers", "peft", "torch"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def _millions(parameters: int | None) -> str:
    return f"{parameters / 1e6:.1f}M parameters" if parameters else "size unknown"


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
