"""llama.cpp's converters, beyond what ``almanac.tooling.gguf_export`` runs: the list of base
architectures the converter handles, and ``convert_lora_to_gguf.py`` for adapter GGUFs.

Both come from the same llama-cpp-python source distribution as the model converter
(``gguf_export.converter_dir``), so an adapter matches the llama.cpp that loads it. The list of
architectures is read from the converter's source with ``ast``: importing it would import torch
and every model module.
"""

from __future__ import annotations

import ast
import os
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from almanac.tooling import gguf_export
from almanac.tooling.gguf_export import ExportError

LORA_CONVERTER = "convert_lora_to_gguf.py"


def supported_architectures(src: Path) -> frozenset[str]:
    """Hugging Face ``architectures`` names the converter in ``src`` registers a text model for.

    Newer converters list them in ``conversion/__init__.py`` (``TEXT_MODEL_MAP``); older ones
    decorate classes with ``@ModelBase.register("Name", ...)``. Both are read.
    """
    names: set[str] = set()
    files = [src / gguf_export.CONVERTER, *sorted((src / "conversion").glob("*.py"))]
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign | ast.Assign) and _assigns(node, "TEXT_MODEL_MAP"):
                value = node.value
                if isinstance(value, ast.Dict):
                    names.update(
                        k.value
                        for k in value.keys
                        if isinstance(k, ast.Constant) and isinstance(k.value, str)
                    )
            elif isinstance(node, ast.ClassDef):
                for deco in node.decorator_list:
                    if _is_register(deco) and isinstance(deco, ast.Call):
                        names.update(
                            a.value
                            for a in deco.args
                            if isinstance(a, ast.Constant) and isinstance(a.value, str)
                        )
    return frozenset(names)


def _assigns(node: ast.AnnAssign | ast.Assign, name: str) -> bool:
    targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
    return any(isinstance(t, ast.Name) and t.id == name for t in targets)


def _is_register(deco: ast.expr) -> bool:
    # ModelBase.register(...) or TextModel.register(...): any "<Name>.register(...)" call.
    return (
        isinstance(deco, ast.Call)
        and isinstance(deco.func, ast.Attribute)
        and deco.func.attr == "register"
    )


def lora_converter_dir(cache: Path) -> Path:
    """``converter_dir(cache)``, with ``convert_lora_to_gguf.py`` added from the same sdist."""
    src = gguf_export.converter_dir(cache)
    if (src / LORA_CONVERTER).is_file():
        return src
    version = gguf_export.llama_cpp_version()
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-", dir=cache) as tmp:
        # The same pip download gguf_export uses (pip's cache makes the second one quick).
        sdist = gguf_export._download_sdist(version, Path(tmp))
        partial = src / (LORA_CONVERTER + ".partial")
        with tarfile.open(sdist, "r:gz") as tar:
            member = next(
                (
                    m
                    for m in tar.getmembers()
                    if PurePosixPath(m.name).parts[1:] == ("vendor", "llama.cpp", LORA_CONVERTER)
                    and m.isfile()
                ),
                None,
            )
            if member is None:
                raise ExportError(f"{sdist.name} has no vendor/llama.cpp/{LORA_CONVERTER}")
            data = tar.extractfile(member)
            if data is None:
                raise ExportError(f"cannot read {LORA_CONVERTER} in {sdist.name}")
            partial.write_bytes(data.read())
        os.replace(partial, src / LORA_CONVERTER)
    return src


def convert_lora_to_gguf(
    adapter_dir: Path,
    base_dir: Path,
    out: Path,
    *,
    cache: Path,
    outtype: str = "f16",
    timeout: float = 3600.0,
) -> Path:
    """Convert a PEFT LoRA adapter folder to a llama.cpp adapter GGUF (``lora_path=``)."""
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ExportError(f"{adapter_dir} is not a PEFT adapter folder (no adapter_config.json)")
    src = lora_converter_dir(cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    cmd = [
        sys.executable,
        str(src / LORA_CONVERTER),
        str(adapter_dir),
        "--base",
        str(base_dir),
        "--outfile",
        str(partial),
        "--outtype",
        outtype,
    ]
    return gguf_export.run_converter(cmd, src, partial, out, "converting the adapter", timeout)
