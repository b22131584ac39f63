"""read_gguf_header against files written by the gguf package, and against cut or hostile ones."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from almanac.core.llm.gguf_header import (
    SMALL_ARRAY,
    HeaderError,
    HeaderPastEnd,
    SkippedArray,
    read_gguf_header,
    scalar,
)

VOCAB = [f"tok{i}" for i in range(5000)]  # longer than SMALL_ARRAY: stepped over, not decoded


def write(path: Path, *, vocab: list[str] = VOCAB) -> Path:
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("Header Test")
    w.add_context_length(512)
    w.add_uint32("llama.block_count", 3)
    w.add_array("llama.attention.head_count_kv", [2, 4, 2])
    w.add_token_list(vocab)
    w.add_token_scores([0.5] * len(vocab))
    w.add_float32("test.temperature", 0.25)
    w.add_bool("test.flag", True)
    w.add_string("test.after_vocab", "still read")
    w.add_tensor("token_embd.weight", np.ones((len(vocab) // 100, 64), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones((64,), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_fields_and_tensors_agree_with_the_gguf_package(tmp_path: Path) -> None:
    path = write(tmp_path / "m.gguf")
    header = read_gguf_header(path)
    reference = gguf.GGUFReader(path)
    assert header.version == 3
    assert scalar(header, "general.name") == "Header Test"
    assert scalar(header, "llama.context_length") == 512
    assert scalar(header, "llama.attention.head_count_kv") == [2, 4, 2]
    assert scalar(header, "test.temperature") == pytest.approx(0.25)
    assert scalar(header, "test.flag") is True
    # Fields after the long arrays are read from the right place.
    assert scalar(header, "test.after_vocab") == "still read"
    assert header.fields["tokenizer.ggml.tokens"] == SkippedArray(8, len(VOCAB))
    assert scalar(header, "tokenizer.ggml.tokens") is None
    assert set(header.fields) == set(reference.fields) - {
        "GGUF.version",
        "GGUF.tensor_count",
        "GGUF.kv_count",
    }
    assert [(t.name, t.n_elements, t.offset) for t in header.tensors] == [
        (t.name, int(t.n_elements), int(t.data_offset)) for t in reference.tensors
    ]
    assert [t.type for t in header.tensors] == [int(t.tensor_type) for t in reference.tensors]
    assert header.data_offset == reference.data_offset


def test_a_short_array_is_decoded(tmp_path: Path) -> None:
    vocab = [f"t{i}" for i in range(SMALL_ARRAY)]
    header = read_gguf_header(write(tmp_path / "m.gguf", vocab=vocab))
    assert scalar(header, "tokenizer.ggml.tokens") == vocab


@pytest.mark.parametrize("keep_fraction", [0.05, 0.3, 0.6])
def test_a_file_cut_inside_the_vocabulary_ends_in_the_header(
    tmp_path: Path, keep_fraction: float
) -> None:
    data = write(tmp_path / "m.gguf").read_bytes()
    header_end = read_gguf_header(tmp_path / "m.gguf").data_offset
    keep = int(header_end * keep_fraction)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:keep])
    with pytest.raises(HeaderPastEnd) as e:
        read_gguf_header(cut)
    assert (e.value.part, e.value.have) == ("header", keep)
    assert e.value.needed > keep


def _minimal(kv: bytes, kv_count: int = 1) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, 0, kv_count) + kv


def _key(name: str) -> bytes:
    return struct.pack("<Q", len(name)) + name.encode()


def test_an_absurd_array_length_is_a_cut_file_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "hostile.gguf"
    # An array of 2**62 strings each claiming to be empty: stepped over only as far as the bytes go.
    path.write_bytes(_minimal(_key("x") + struct.pack("<IIQ", 9, 8, 2**62) + bytes(64)))
    with pytest.raises(HeaderPastEnd):
        read_gguf_header(path)


@pytest.mark.parametrize(
    ("kv", "message"),
    [
        (_key("x") + struct.pack("<I", 77), "unknown metadata value type 77"),
        (_key("x") + struct.pack("<IIQ", 9, 9, 1), "nested array"),
        (_key("x") + struct.pack("<IQ", 8, 2) + b"\xff\xfe", "not UTF-8"),
        (_key("general.alignment") + struct.pack("<II", 4, 48), "not a power of two"),
    ],
)
def test_a_corrupt_header_names_the_problem(tmp_path: Path, kv: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(_minimal(kv))
    with pytest.raises(HeaderError, match=message):
        read_gguf_header(path)
