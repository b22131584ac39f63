"""``almanac finetune``: its arguments and handler, kept here so cli.py only registers them.

The handler imports the recipe lazily: ``almanac --help`` must not import torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

QUANT_CHOICES = ("Q4_K_M", "Q8_0", "F16")


def add_finetune_parser(sub: Any) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a chat model (LoRA) for cited answers, export a quantized GGUF",
        description=(
            "Teach a Hugging Face chat model the support desk's behaviour (cite the numbered "
            "sources, refuse when they don't answer), export it as a GGUF for Almanac. "
            "The last line printed is the path of the GGUF written."
        ),
    )
    p.add_argument(
        "--base",
        type=Path,
        required=True,
        metavar="HF_MODEL_DIR|MODEL.gguf",
        help="a Hugging Face model folder, or a GGUF file (turned into one, once)",
    )
    p.add_argument(
        "--data", type=Path, required=True, metavar="TRAIN.jsonl", help="chat conversations"
    )
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument(
        "--quant",
        type=str.upper,
        choices=QUANT_CHOICES,
        help="GGUF type (default: the recipe's, Q4_K_M)",
    )
    p.add_argument("--max-steps", type=int, metavar="N", help="training steps (overrides epochs)")
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="export only the LoRA adapter GGUF (llama.cpp runtime LoRA), plus the base GGUF",
    )
    p.add_argument("--recipe", type=Path, metavar="FILE", help="recipe (.toml or .json)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    p.add_argument("--no-register", action="store_true", help="don't add it to the catalog")
    p.add_argument(
        "--catalog",
        type=Path,
        metavar="FILE",
        help="user model catalog (default: $ALMANAC_USER_CATALOG or the user data folder)",
    )
    p.add_argument(
        "--converter-cache",
        type=Path,
        metavar="DIR",
        help="where llama.cpp's converter is kept (default: the user cache folder)",
    )
    p.add_argument(
        "--keep-intermediate", action="store_true", help="keep the merged model and base GGUF"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    if args.max_steps is not None and args.max_steps < 1:
        print("almanac finetune: error: --max-steps must be at least 1", file=sys.stderr)
        return 2
    from almanac.core.system.offline import enforce_offline_env

    enforce_offline_env()
    from almanac.finetune.errors import FinetuneError
    from almanac.finetune.pipeline import FinetuneOptions, run
    from almanac.tooling.gguf_export import ExportError

    if args.quiet:
        from transformers.utils import logging as transformers_logging

        quiet: Any = transformers_logging.disable_progress_bar  # untyped
        quiet()  # no "Loading weights" / "Writing model shards" bars

    def say(message: str) -> None:
        if not args.quiet:
            print(f"finetune: {message}", file=sys.stderr, flush=True)

    options = FinetuneOptions(
        base=args.base,
        data=args.data,
        out=args.out,
        quant=args.quant,
        max_steps=args.max_steps,
        adapter_only=args.adapter_only,
        recipe=args.recipe,
        resume=args.resume,
        evaluate=not args.no_eval,
        register=not args.no_register,
        user_catalog=args.catalog,
        converter_cache=args.converter_cache,
        keep_intermediate=args.keep_intermediate,
        progress=not args.quiet,
    )
    try:
        result = run(options, say)
    except (FinetuneError, ExportError) as exc:
        # Every problem, not only the first line: a data file's errors are fixed in one go.
        lines = str(exc).strip().splitlines() or ["failed"]
        print(f"almanac: error: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(result.output)
    return 0
