"""Quantizing a GGUF with llama.cpp: the fine-tuning export (F16 → Q4_K_M) and the default model's
runtime file (the package index's Q4_1 base re-quantized to Q4_0, see ``default_model``)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from almanac.core.llm.base import ModelError
from almanac.core.llm.llama_log import route_llama_log

# llama.cpp's file types by the names users know.
QTYPES = {
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
}


class QuantizeError(ModelError):
    """llama.cpp could not write the quantized file; the message names the file and type."""


def quantize_gguf(
    src: Path, dst: Path, qtype: str, *, requantize: bool = False, threads: int | None = None
) -> Path:
    """Write ``src`` quantized to ``qtype`` at ``dst`` (atomically: a crash leaves no half file).

    ``requantize`` allows a source that is already quantized (llama.cpp refuses one otherwise,
    because every pass loses precision; the default model accepts that loss for speed, measured
    in its model card). The result depends only on the input and llama.cpp's version: the
    quantizer works block by block, so the thread count does not change a byte."""
    import llama_cpp

    const_name = QTYPES.get(qtype.upper())
    if const_name is None:
        raise QuantizeError(f"unsupported quantization {qtype!r} (one of {', '.join(QTYPES)})")
    if not src.is_file():
        raise QuantizeError(f"no such GGUF file: {src}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, const_name)
    params.nthread = threads or os.cpu_count() or 1
    params.allow_requantize = requantize
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f"{dst.name}.{os.getpid()}.partial")
    # llama.cpp logs a line per tensor: debug records (see llama_log), not terminal output.
    route_llama_log()
    rc = int(
        llama_cpp.llama_model_quantize(
            str(src).encode("utf-8"), str(partial).encode("utf-8"), ctypes.byref(params)
        )
    )
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise QuantizeError(f"quantizing {src.name} to {qtype} failed (llama.cpp returned {rc})")
    os.replace(partial, dst)
    return dst
