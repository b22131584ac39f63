"""The model card: what was trained from what, on which data, with which settings, how it
scored, and the hashes of the files, in Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from almanac.finetune.evaluate import Scores
from almanac.finetune.export import ExportedFile
from almanac.finetune.recipe import Recipe


def model_card(
    *,
    name: str,
    base: dict[str, Any],
    data: dict[str, Any],
    recipe: Recipe,
    training: dict[str, Any],
    files: Sequence[ExportedFile],
    scores: tuple[Scores, Scores] | None,
    notes: Sequence[str] = (),
    versions: dict[str, str],
) -> str:
    params = base.get("parameters")
    lines = [
        f"# {name}",
        "",
        "A chat model fine-tuned with Almanac's recipe (`almanac finetune`) to answer like a "
        "support desk: concise answers from the numbered sources in its prompt, a `[n]` "
        "citation after every sentence that uses a source, and a polite refusal when the "
        "sources don't contain the answer. Facts come from retrieval at run time, not from "
        "the weights.",
        "",
        "## Base model",
        "",
        f"- folder: `{base['path']}`",
        f"- architecture: {base['architecture']} (`{base['model_type']}`)",
        f"- parameters: {f'{params / 1e6:.1f}M' if params else 'unknown'}",
        f"- context length: {base.get('context_length') or 'unknown'} tokens",
        "",
        "## Training data",
        "",
        f"- file: `{data['path']}` (sha256 `{data['sha256']}`)",
        f"- conversations: {data['train']['conversations']} for training "
        f"({data['train']['refusals']} refusals), {data['heldout']['conversations']} held out "
        f"({data['heldout']['refusals']} refusals)",
        f"- tokens per conversation: mean {data['train']['tokens_mean']}, "
        f"max {data['train']['tokens_max']}",
        "",
        "## Training",
        "",
        f"- LoRA rank {recipe.lora.r}, alpha {recipe.lora.alpha}, dropout "
        f"{recipe.lora.dropout:g}, on {', '.join(training['target_modules'])}",
        f"- {training['steps']} steps, learning rate {recipe.train.learning_rate:g}, "
        f"batch {recipe.train.batch_size} x {recipe.train.grad_accum} accumulation, "
        f"seed {recipe.train.seed}",
        f"- device {training['device']} ({training['dtype']}), {training['seconds']:.0f} s; "
        f"loss {_num(training.get('first_loss'))} -> {_num(training.get('final_loss'))}",
        f"- trainable parameters: {training['trainable_parameters']:,} of "
        f"{training['total_parameters']:,}",
        "",
    ]
    if scores is not None:
        before, after = scores
        lines += [
            "## Evaluation (held-out set, base vs fine-tuned GGUF)",
            "",
            "| Metric | Base | Fine-tuned |",
            "|---|---|---|",
            f"| Citation format | {_num(before.citation_format)} | {_num(after.citation_format)} |",
            f"| Cites the right source | {_num(before.right_source)} | "
            f"{_num(after.right_source)} |",
            f"| Correct refusals | {_num(before.correct_refusals)} | "
            f"{_num(after.correct_refusals)} |",
            f"| False refusals | {_num(before.false_refusals)} | {_num(after.false_refusals)} |",
            f"| Grounded | {_num(before.grounded)} | {_num(after.grounded)} |",
            f"| Token F1 vs reference | {_num(before.token_f1)} | {_num(after.token_f1)} |",
            f"| MiniLM cosine vs reference | {_num(before.cosine)} | {_num(after.cosine)} |",
            "",
            "Details and sample answers: `report.md`.",
            "",
        ]
    else:
        lines += ["## Evaluation", "", "Not run (see notes).", ""]
    lines += ["## Files", "", "| File | Kind | Type | Size | SHA-256 |", "|---|---|---|---|---|"]
    for f in files:
        lines.append(
            f"| `{Path(f.path).name}` | {f.kind} | {f.quantization} | "
            f"{f.size_bytes / 1e6:.1f} MB | `{f.sha256}` |"
        )
    lines += ["", "Tensor types:", ""]
    for f in files:
        kinds = ", ".join(f"{k} x{v}" for k, v in sorted(f.tensor_types.items()))
        lines.append(f"- `{Path(f.path).name}`: {kinds}")
    lines += ["", "## Recipe", "", "```toml", recipe.to_toml().rstrip(), "```", ""]
    lines += ["## Tools", ""]
    lines += [f"- {k} {v}" for k, v in sorted(versions.items())]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def keep_added_sections(previous: str, card: str) -> str:
    """``card`` (just generated) with the sections of ``previous`` (the card it replaces) that the
    generator does not write: measurements added after training (the runtime file's speed, the
    bases compared) survive a new run instead of being lost with the old file. They go before
    ``## Files``, in their old order; a section the generator also writes is the new one."""
    written = {heading for heading, _ in _sections(card)}
    added = [body for heading, body in _sections(previous) if heading and heading not in written]
    if not added:
        return card
    marker = "\n## Files\n"
    at = card.find(marker)
    at = len(card) if at < 0 else at + 1
    return card[:at] + "".join(added) + card[at:]


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, its text from the heading to the next one) for each ``## `` section; the part
    before the first section has the heading ""."""
    parts: list[tuple[str, str]] = []
    heading = ""
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            parts.append((heading, "".join(lines)))
            heading, lines = _section_name(line), []
        lines.append(line)
    parts.append((heading, "".join(lines)))
    return parts


def _section_name(line: str) -> str:
    # "## Evaluation (held-out set, ...)" and "## Evaluation" are the same section.
    return line[3:].split("(")[0].strip().lower()


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
