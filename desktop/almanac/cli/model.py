"""``almanac model``: check a GGUF model file against the catalog, or list the catalog."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from almanac.cli.common import EXIT_OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "model", help="check a GGUF model file against the catalog, or list the catalog"
    )
    p.add_argument("file", nargs="?", type=Path, metavar="GGUF", help="the model file to check")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_model)


def _cmd_model(args: argparse.Namespace) -> int:
    from almanac.core.llm.catalog import add_model, load_catalog
    from almanac.core.llm.gguf_file import describe

    catalog = load_catalog()
    if args.file is None:
        default = _default_model_entry()
        if args.json:
            entries = [default, *(dataclasses.asdict(e) for e in catalog)]
            print(json.dumps(entries, ensure_ascii=False))
            return EXIT_OK
        print(f"Default model: {default['name']}")
        if default["problem"]:
            print(f"  not usable: {default['problem']} (answers are the passages alone)")
        else:
            joined = default["base_parts"] and not Path(default["path"]).exists()
            later = (
                f" (joined from its {default['base_parts']} parts on first use)" if joined else ""
            )
            print(f"  base {default['path']}{later}")
            print(f"  adapter {default['adapter']}")
            print(f"  model card {default['model_card']}")
        print("Recommended models (download them yourself, then: almanac model FILE.gguf):")
        for e in catalog:
            size = f"{e.size_bytes / 1e9:.2f} GB" if e.size_bytes else "size unverified"
            known = "sha256 known" if e.sha256 else "sha256 unverified"
            print(f"  {e.name}: {e.file_name} ({e.quantization}, {size}, {known}, {e.licence})")
        return EXIT_OK
    added = add_model(args.file, catalog)
    info = added.info
    if added.verified:
        status = "verified against the catalog (sha256 matches)"
    elif added.entry is not None:
        status = "in the catalog, but the catalog has no hash for it: not verified"
    else:
        status = "not in the catalog: not verified"
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(added.path),
                    "sha256": added.sha256,
                    "verified": added.verified,
                    "catalog_entry": added.entry.name if added.entry else None,
                    "architecture": info.architecture,
                    "quantization": info.quantization,
                    "context_length": info.context_length,
                    "chat_template": info.chat_template is not None,
                    "parameters": info.parameter_count,
                    "size_bytes": info.size_bytes,
                }
            )
        )
        return EXIT_OK
    print(f"{added.path.name}: {describe(info)}")
    print(f"  architecture {info.architecture}, context {info.context_length or '?'} tokens")
    print(
        f"  chat template: {'stored in the file' if info.chat_template else 'none (ChatML used)'}"
    )
    print(f"  sha256 {added.sha256}: {status}")
    return EXIT_OK


def _default_model_entry() -> dict[str, Any]:
    """Almanac's default model as a listing entry (``"default": true``), usable or not."""
    from almanac.app.environment import model_cache_dir, read_environment
    from almanac.core.llm.default_model import DefaultModelError, resolve_default_model

    entry: dict[str, Any] = {
        "default": True,
        "name": "Almanac default model",
        "quantization": None,
        "problem": None,
    }
    try:
        env = read_environment()
        found = resolve_default_model(env.default_model_dir, cache_dir=model_cache_dir(env))
    except DefaultModelError as exc:
        entry["problem"] = str(exc)
        return entry
    entry.update(
        name=found.name,
        description=found.description,
        path=str(found.path),
        file_name=found.path.name,
        quantization=found.quantization,
        base_parts=len(found.parts),
        adapter=str(found.adapter) if found.adapter else None,
        sha256=found.base_sha256,
        adapter_sha256=found.adapter_sha256,
        model_card=str(found.card) if found.card else None,
    )
    return entry
