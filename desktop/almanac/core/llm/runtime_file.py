"""The default model's runtime file: its base re-quantized to a type llama.cpp reads faster on CPU.

The package index carries SmolLM2-135M-Instruct as Q4_1. llama.cpp repacks Q4_0 (and Q4_K)
matrices for the CPU's vector units when it loads them and has no such path for Q4_1, so the same
model reads an 840-token prompt in half the CPU time as Q4_0 (figures and the choice between the
two in models/default/MODEL_CARD.md). The file is derived once, in about a second, from the
verified base, and is checked against the manifest's SHA-256: llama.cpp's quantizer is
deterministic, so a different hash means a different llama.cpp (or a damaged cache), and then the
base itself is used. Nothing here downloads anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from almanac.core.llm.quantize import QuantizeError, quantize_gguf
from almanac.core.system.hashing import file_matches, sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    quantization: str  # e.g. "Q4_0"
    sha256: str
    size_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class RuntimeFile:
    path: Path
    derived: bool  # False: the base itself, with ``reason`` saying why
    reason: str = ""


def runtime_file(base: Path, base_sha256: str, spec: RuntimeSpec, cache_dir: Path) -> RuntimeFile:
    """The file to load: the cached derived GGUF when it matches ``spec``; else derive it from
    ``base`` (which the caller has verified) and keep it if it matches; else ``base``."""
    target = cache_dir / f"{base.stem}-{base_sha256[:12]}.{spec.quantization}.gguf"
    if file_matches(target, spec.sha256, spec.size_bytes):
        return RuntimeFile(target, derived=True)
    try:
        quantize_gguf(base, target, spec.quantization, requantize=True)
    except (QuantizeError, OSError) as exc:
        return _fallback(base, target, f"could not write {target}: {exc}")
    if file_matches(target, spec.sha256, spec.size_bytes):
        return RuntimeFile(target, derived=True)
    return _fallback(
        base,
        target,
        f"this llama.cpp's {spec.quantization} of {base.name} differs from the manifest's "
        f"(SHA-256 {sha256_file(target)[:12]}…, expected {spec.sha256[:12]}…)",
    )


def _fallback(base: Path, target: Path, reason: str) -> RuntimeFile:
    target.unlink(missing_ok=True)  # never leave a file that would be checked (and fail) again
    log.warning("using %s as it is: %s", base.name, reason)
    return RuntimeFile(base, derived=False, reason=reason)
