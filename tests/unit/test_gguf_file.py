"""inspect_gguf / check_fits_memory on small GGUF files written here with the gguf package."""

from __future__ import annotations

import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest

from almanac.core.llm import gguf_file
from almanac.core.llm.base import (
    ModelError,
    ModelNotFoundError,
    ModelTooLargeError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedModelError,
)
from almanac.core.llm.gguf_file import check_fits_memory, inspect_gguf

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"


def write_gguf(
    path: Path,
    arch: str = "llama",
    *,
    kind: str | None = None,
    tensors: bool = True,
    file_type: int | None = int(gguf.LlamaFileType.ALL_F32),
) -> Path:
    """A tiny llama-shaped file: 2 layers, 4 heads (2 KV heads), 64-wide, two tensors."""
    w = gguf.GGUFWriter(path, arch)
    w.add_name("Tiny Test Model")
    if kind:
        w.add_type(kind)
    w.add_context_length(256)
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_chat_template(TEMPLATE)
    if file_type is not None:
        w.add_file_type(file_type)
    if tensors:
        w.add_tensor("token_embd.weight", np.ones((32, 64), dtype=np.float32))
        w.add_tensor("output_norm.weight", np.ones((64,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "tiny.gguf")


def assert_one_line(err: ModelError) -> None:
    assert "\n" not in str(err)
    assert str(err)


def test_inspect_reads_the_header_fields(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    assert info.path == tiny
    assert info.file_name == "tiny.gguf"
    assert info.size_bytes == tiny.stat().st_size
    assert info.gguf_version == 3
    assert info.architecture == "llama"
    assert info.name == "Tiny Test Model"
    assert info.context_length == 256
    assert info.chat_template == TEMPLATE
    assert info.quantization == "F32"
    assert info.tensor_count == 2
    assert info.parameter_count == 32 * 64 + 64
    assert (info.block_count, info.embedding_length) == (2, 64)
    assert (info.head_count, info.head_count_kv) == (4, 2)


def test_kv_cache_estimate_follows_the_shape(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    # 2 layers x 2 KV heads x (16 + 16 head dims) x 2 bytes (f16) per token.
    assert info.kv_cache_bytes(1000) == 1000 * 2 * 2 * (16 + 16) * 2
    assert info.kv_cache_bytes(2000) == 2 * info.kv_cache_bytes(1000)  # type: ignore[operator]


def test_quantization_named_from_file_type(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "q.gguf", file_type=int(gguf.LlamaFileType.MOSTLY_Q4_K_M))
    assert inspect_gguf(path).quantization == "Q4_K_M"


def test_quantization_guessed_from_tensors_without_file_type(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "nf.gguf", file_type=None)
    assert inspect_gguf(path).quantization == "F32"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"model file not found: .*absent\.gguf") as e:
        inspect_gguf(tmp_path / "absent.gguf")
    assert_one_line(e.value)


def test_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(NotAModelError, match=r"is a folder"):
        inspect_gguf(tmp_path)


def test_text_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("these are my meeting notes\n", encoding="utf-8")
    with pytest.raises(
        NotAModelError, match=r"^not a GGUF model file \(notes\.gguf: .*text file"
    ) as e:
        inspect_gguf(path)
    assert_one_line(e.value)


def test_renamed_zip_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data.pkl", b"\x80\x04weights")
    with pytest.raises(
        NotAModelError, match=r"^not a GGUF model file \(model\.gguf: .*zip archive"
    ):
        inspect_gguf(path)


def test_renamed_safetensors_is_not_a_model(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    path = tmp_path / "model.gguf"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    with pytest.raises(NotAModelError, match=r"safetensors"):
        inspect_gguf(path)


def test_empty_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(NotAModelError, match=r"the file is empty"):
        inspect_gguf(path)


def test_file_cut_in_tensor_data_is_truncated(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(
        TruncatedModelError,
        match=rf"^model file is truncated: cut\.gguf has {len(data) - 100} bytes but its "
        r"tensor data runs to at least \d+",
    ) as e:
        inspect_gguf(cut)
    assert_one_line(e.value)


@pytest.mark.parametrize("keep", [8, 40, 200])
def test_file_cut_in_header_is_truncated(tiny: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny.read_bytes()[:keep])
    with pytest.raises(TruncatedModelError, match=rf"has {keep} bytes but its header runs to"):
        inspect_gguf(cut)


def test_unknown_architecture_is_unsupported(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "odd.gguf", arch="frobnicator")
    with pytest.raises(
        UnsupportedModelError, match=r"^unsupported model architecture 'frobnicator' in odd\.gguf"
    ) as e:
        inspect_gguf(path)
    assert_one_line(e.value)


def test_unknown_gguf_version_is_unsupported(tiny: Path, tmp_path: Path) -> None:
    data = bytearray(tiny.read_bytes())
    data[4:8] = (99).to_bytes(4, "little")
    path = tmp_path / "future.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedModelError, match=r"unsupported GGUF version"):
        inspect_gguf(path)


def test_lora_adapter_is_not_a_model(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "lora.gguf", kind="adapter")
    with pytest.raises(NotAModelError, match=r"LoRA adapter"):
        inspect_gguf(path)


def test_vocabulary_only_file_is_not_a_model(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "vocab.gguf", tensors=False)
    with pytest.raises(NotAModelError, match=r"holds no weights"):
        inspect_gguf(path)


def test_too_large_for_available_memory(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = inspect_gguf(tiny)
    monkeypatch.setattr(gguf_file, "available_memory_bytes", lambda: 1000)
    with pytest.raises(
        ModelTooLargeError,
        match=r"^tiny\.gguf needs about 0\.\d\d GB of memory \(model 0\.00 GB \+ 0\.\d\d GB for a "
        r"4096-token context\) but only 0\.00 GB is available",
    ) as e:
        check_fits_memory(info, 4096)
    assert_one_line(e.value)


def test_fits_when_memory_suffices(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = inspect_gguf(tiny)
    monkeypatch.setattr(gguf_file, "available_memory_bytes", lambda: 10**9)
    check_fits_memory(info, 4096)


def test_unknown_available_memory_skips_the_check(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gguf_file, "available_memory_bytes", lambda: None)
    check_fits_memory(inspect_gguf(tiny), 10**6)


def test_available_memory_is_a_positive_number_here() -> None:
    available = gguf_file.available_memory_bytes()
    assert available is None or available > 0
