"""LoRA training with PEFT: CPU or CUDA, progress bar, checkpoints, resume.

The loop is small and explicit rather than ``transformers.Trainer``: the loss is computed only at
positions that have a target (the assistant turns), through ``logits_to_keep``, which spares the
output layer most of its work (a 150k-token vocabulary over 2,000 prompt tokens is most of the
memory), and resuming is exact: the data order of every step is a function of the seed and the
step, and the checkpoint holds the adapter, the optimizer, the schedule and the RNG state.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from almanac.finetune.encoding import IGNORE, Encoded
from almanac.finetune.errors import FinetuneError
from almanac.finetune.recipe import Recipe, target_modules

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
_STATE = "state.json"
_WEIGHTS = "adapter.safetensors"

StepCallback = Callable[[int, float], None]  # (step just finished, its loss)


@dataclass(frozen=True, slots=True)
class TrainResult:
    adapter_dir: Path
    steps: int
    resumed_from: int | None
    losses: list[tuple[int, float]]  # (step, loss), every step
    seconds: float  # this run's training time (not counting an earlier interrupted run)
    device: str
    dtype: str
    trainable_parameters: int
    total_parameters: int
    notes: list[str] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        tail = [loss for _, loss in self.losses[-10:]]
        return sum(tail) / len(tail) if tail else None

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "resumed_from": self.resumed_from,
            "first_loss": self.losses[0][1] if self.losses else None,
            "final_loss": self.final_loss,
            "seconds": round(self.seconds, 1),
            "device": self.device,
            "dtype": self.dtype,
            "trainable_parameters": self.trainable_parameters,
            "total_parameters": self.total_parameters,
        }


def pick_device(setting: str) -> tuple[str, Any]:
    """("cuda", bf16 or fp16) when a CUDA GPU is there (and allowed), else ("cpu", float32)."""
    import torch

    cuda = torch.cuda.is_available()
    if setting == "cuda" and not cuda:
        raise FinetuneError("[train].device is cuda, but torch sees no CUDA GPU")
    if setting == "cpu" or not cuda:
        return "cpu", torch.float32
    return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_bf16() -> bool:
    """Native bf16 matrix instructions (avx512_bf16 or AMX): without them, bf16 on a CPU is
    emulated and slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(device: str, dtype: Any, cpu_precision: str) -> Any | None:
    """The dtype matrix products run in under autocast, or None for none."""
    import torch

    if device == "cuda":
        return dtype
    if cpu_precision == "bf16" or (cpu_precision == "auto" and cpu_has_bf16()):
        return torch.bfloat16
    return None


def total_steps(recipe: Recipe, examples: int) -> int:
    t = recipe.train
    if t.max_steps:
        return t.max_steps
    return t.epochs * math.ceil(examples / (t.batch_size * t.grad_accum))


def micro_batches(
    examples: int, batch_size: int, seed: int, start: int, count: int
) -> list[list[int]]:
    """Micro-batches ``start`` .. ``start + count - 1`` of the endless epoch sequence: each epoch
    is a fresh shuffle, seeded by (seed, epoch), so any step's data is known without state."""
    per_epoch = math.ceil(examples / batch_size)
    out: list[list[int]] = []
    orders: dict[int, list[int]] = {}
    for m in range(start, start + count):
        epoch, index = divmod(m, per_epoch)
        if epoch not in orders:
            order = list(range(examples))
            random.Random(seed * 100_003 + epoch).shuffle(order)
            orders[epoch] = order
        out.append(orders[epoch][index * batch_size : (index + 1) * batch_size])
    return out


def train_lora(
    base_dir: Path,
    rows: Sequence[Encoded],
    recipe: Recipe,
    out_dir: Path,
    *,
    fingerprint: str,
    model_type: str,
    resume: bool = False,
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``rows``; write it to ``out_dir/adapter``.

    Checkpoints go to ``out_dir/checkpoints`` every ``checkpoint_every`` steps, at the end and
    on Ctrl+C. ``fingerprint`` identifies data and settings: a checkpoint made with another one
    is refused on resume. ``on_step`` is called after every optimizer step.
    """
    import torch

    if not rows:
        raise FinetuneError("no training conversations")
    t = recipe.train
    ckpt_root = out_dir / CHECKPOINTS
    latest = latest_checkpoint(ckpt_root)
    if latest is not None and not resume:
        raise FinetuneError(
            f"{out_dir} holds checkpoints of an earlier run: add --resume to continue it, "
            "or choose another --out"
        )
    device, dtype = pick_device(t.device)
    steps_total = total_steps(recipe, len(rows))
    threads = torch.get_num_threads()
    if t.threads:
        torch.set_num_threads(t.threads)
    try:
        return _train(
            base_dir,
            rows,
            recipe,
            out_dir,
            fingerprint,
            model_type,
            latest,
            device,
            dtype,
            steps_total,
            resume,
            progress,
            on_step,
        )
    finally:
        torch.set_num_threads(threads)


def _train(
    base_dir: Path,
    rows: Sequence[Encoded],
    recipe: Recipe,
    out_dir: Path,
    fingerprint: str,
    model_type: str,
    latest: Path | None,
    device: str,
    dtype: Any,
    steps_total: int,
    resume: bool,
    progress: bool,
    on_step: StepCallback | None,
) -> TrainResult:
    import torch

    t = recipe.train
    ckpt_root = out_dir / CHECKPOINTS
    model = _load_model(base_dir, recipe, model_type, device, dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    warmup = max(1, round(steps_total * t.warmup_ratio)) if t.warmup_ratio > 0 else 0

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, steps_total - warmup)
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step = 0
    losses: list[tuple[int, float]] = []
    notes: list[str] = []
    resumed_from: int | None = None
    if latest is not None:
        step, losses = _load_checkpoint(latest, model, optimizer, scheduler, fingerprint)
        resumed_from = step
        if step > steps_total:
            raise FinetuneError(
                f"the checkpoint is at step {step}, past this run's {steps_total} steps"
            )
    elif resume:
        notes.append("--resume: no checkpoint found, started from step 0")

    pad = int(_pad_id(base_dir))
    autocast = autocast_dtype(device, dtype, t.cpu_precision)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    bar = _progress_bar(steps_total, step, progress)
    started = time.monotonic()
    model.train()
    try:
        while step < steps_total:
            batches = micro_batches(
                len(rows), t.batch_size, t.seed, step * t.grad_accum, t.grad_accum
            )
            chosen = [[rows[i] for i in batch] for batch in batches]
            targets = sum(r.target_tokens for batch in chosen for r in batch)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for batch in chosen:
                loss_sum = _batch_loss(model, batch, pad, device, autocast)
                loss = loss_sum / max(1, targets)
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                step_loss += float(loss.detach())
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            step += 1
            losses.append((step, step_loss))
            bar.set_postfix(
                loss=f"{step_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False
            )
            bar.update(1)
            if step % t.checkpoint_every == 0 or step == steps_total:
                _save_checkpoint(ckpt_root, step, model, optimizer, scheduler, fingerprint, losses)
                _prune(ckpt_root, t.keep_checkpoints)
            if on_step is not None:
                on_step(step, step_loss)
    except KeyboardInterrupt:
        bar.close()
        if step and (latest_checkpoint(ckpt_root) or Path()).name != _name(step):
            _save_checkpoint(ckpt_root, step, model, optimizer, scheduler, fingerprint, losses)
            _prune(ckpt_root, t.keep_checkpoints)
        print(
            f"interrupted at step {step}/{steps_total}; checkpoint saved, continue with --resume",
            file=sys.stderr,
        )
        raise
    bar.close()
    seconds = time.monotonic() - started
    adapter_dir = out_dir / ADAPTER
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    model.save_pretrained(str(adapter_dir))
    total = sum(p.numel() for p in model.parameters())
    return TrainResult(
        adapter_dir=adapter_dir,
        steps=step,
        resumed_from=resumed_from,
        losses=losses,
        seconds=seconds,
        device=device,
        dtype=str(dtype).removeprefix("torch.")
        + (
            f", {str(autocast).removeprefix('torch.')} autocast"
            if autocast is not None and device == "cpu"
            else ""
        ),
        trainable_parameters=sum(p.numel() for p in params),
        total_parameters=total,
        notes=notes,
    )


def _load_model(base_dir: Path, recipe: Recipe, model_type: str, device: str, dtype: Any) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    t, lora = recipe.train, recipe.lora
    auto: Any = AutoModelForCausalLM
    model = auto.from_pretrained(str(base_dir), dtype=dtype)
    model.to(device)
    model.config.use_cache = False
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(t.seed)  # the LoRA A matrices' initialization
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target_modules(recipe, model_type),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules not found in the model
        raise FinetuneError(f"LoRA setup failed: {exc}") from exc


def _pad_id(base_dir: Path) -> int:
    from almanac.finetune.encoding import load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    return int(tokenizer.pad_token_id)


def _batch_loss(
    model: Any, batch: Sequence[Encoded], pad: int, device: str, autocast: Any | None
) -> Any:
    """Summed cross-entropy over the batch's target tokens."""
    import torch
    import torch.nn.functional as F

    width = max(len(r.input_ids) for r in batch)
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, r in enumerate(batch):
        input_ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
        labels[i, : len(r.labels)] = torch.tensor(r.labels)
        mask[i, : len(r.input_ids)] = 1
    input_ids, labels, mask = input_ids.to(device), labels.to(device), mask.to(device)
    targets = labels[:, 1:]
    # Logits only where some row has a target: position p predicts token p + 1.
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(-1)
    with torch.autocast(device_type=device, dtype=autocast, enabled=autocast is not None):
        try:
            out = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=keep)
            logits = out.logits
            chosen = targets[:, keep]
        except TypeError:  # a model without logits_to_keep: all positions
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
            chosen = targets
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        chosen.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(
        total=total,
        initial=initial,
        desc="training",
        unit="step",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=1.0,
    )


# -- checkpoints ---------------------------------------------------------------------------------


def _name(step: int) -> str:
    return f"step-{step:06d}"


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint folder (a partial one, cut by a crash, has no state)."""
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if (p / _STATE).is_file() and p.is_dir())
    return done[-1] if done else None


def _save_checkpoint(
    root: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    fingerprint: str,
    losses: list[tuple[int, float]],
) -> Path:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    final = root / _name(step)
    partial = root / (_name(step) + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    weights = {
        k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()
    }
    save_file(weights, str(partial / _WEIGHTS))
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    torch.save(scheduler.state_dict(), partial / "scheduler.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save(rng, partial / "rng.pt")
    state = {"step": step, "fingerprint": fingerprint, "losses": losses}
    (partial / _STATE).write_text(json.dumps(state), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return final


def _load_checkpoint(
    path: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str
) -> tuple[int, list[tuple[int, float]]]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((path / _STATE).read_text(encoding="utf-8"))
    if state.get("fingerprint") != fingerprint:
        raise FinetuneError(
            f"{path} was made with other training data or settings: resume with the same "
            "--data and recipe, or choose another --out"
        )
    device = next(model.parameters()).device
    set_peft_model_state_dict(model, load_file(str(path / _WEIGHTS), device=str(device)))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
    rng = torch.load(path / "rng.pt")
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    losses = [(int(s), float(v)) for s, v in state.get("losses", [])]
    return int(state["step"]), losses


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step-*") if (p / _STATE).is_file())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
