"""llama.cpp's log goes to Python logging at the levels llama.cpp meant, not to the terminal, and a
failed load says what llama.cpp objected to."""

from __future__ import annotations

import logging
from pathlib import Path

import gguf
import numpy as np
import pytest

from almanac.core.llm import llama_log
from almanac.core.llm.base import ModelError
from almanac.core.llm.llama_engine import LlamaCppEngine


def test_levels_follow_ggml_and_continued_pieces_join(caplog: pytest.LogCaptureFixture) -> None:
    llama_log.take_errors()
    with caplog.at_level(logging.DEBUG, logger="almanac.llama_cpp"):
        llama_log._receive(3, b"lora for 'blk.0' cannot use buft 'CPU_REPACK'\n")  # WARN
        llama_log._receive(2, b"loaded meta data\n")  # INFO
        llama_log._receive(4, b"missing tensor ")  # ERROR, in two pieces
        llama_log._receive(5, b"'blk.0.attn_norm.weight'\n")
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        (logging.INFO, "lora for 'blk.0' cannot use buft 'CPU_REPACK'"),
        (logging.DEBUG, "loaded meta data"),
        (logging.ERROR, "missing tensor 'blk.0.attn_norm.weight'"),
    ]
    assert llama_log.take_errors() == ["missing tensor 'blk.0.attn_norm.weight'"]
    assert llama_log.take_errors() == []


def _weights_missing(path: Path) -> Path:
    """A header llama.cpp accepts as a llama model, with most of its weights missing."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(256)
    w.add_block_count(1)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", *(f"t{i}" for i in range(29))])
    w.add_token_scores([0.0] * 32)
    w.add_token_types([2, 3, 3, *([1] * 29)])
    w.add_tensor("token_embd.weight", np.ones((32, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_failed_load_says_why_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _weights_missing(tmp_path / "incomplete.gguf")
    with pytest.raises(
        ModelError, match=r"could not load incomplete\.gguf .*llama\.cpp says .*tensor"
    ):
        LlamaCppEngine(path, n_ctx=256, threads=1)
    assert "llama" not in capfd.readouterr().err  # llama.cpp's own lines went to logging


def test_loading_a_model_and_adapter_prints_nothing(
    tiny_gguf: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    engine = LlamaCppEngine(tiny_gguf, n_ctx=256, threads=1)
    engine.close()
    assert capfd.readouterr().err == ""
