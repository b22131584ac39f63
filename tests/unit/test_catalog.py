"""The shipped model catalog is well-formed; add_model verifies hashes against a catalog."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from almanac.core.llm.base import ModelError, NotAModelError
from almanac.core.llm.catalog import (
    CatalogEntry,
    CatalogError,
    add_model,
    default_catalog_path,
    default_models_dir,
    find_entry,
    load_catalog,
    parse_catalog,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[2]


def tiny_gguf(path: Path) -> Path:
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_block_count(1)
    w.add_embedding_length(16)
    w.add_head_count(2)
    w.add_tensor("token_embd.weight", np.arange(16 * 8, dtype=np.float32).reshape(8, 16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def entry(file_name: str, sha256: str | None, size: int | None = None) -> CatalogEntry:
    return CatalogEntry(
        name="Test",
        file_name=file_name,
        download_page="https://example.org/test",
        size_bytes=size,
        quantization="F32",
        sha256=sha256,
        context_length=128,
        licence="MIT",
        parameters="128",
    )


def raw_entry(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": "Test",
        "file_name": "test.gguf",
        "download_page": "https://example.org/test",
        "size_bytes": 10,
        "quantization": "Q4_K_M",
        "sha256": "a" * 64,
        "context_length": 4096,
        "licence": "MIT",
        "parameters": "1B",
    }
    item.update(overrides)
    return item


# --- The shipped catalog --------------------------------------------------------------------------


def test_shipped_catalog_is_the_default_and_parses() -> None:
    assert default_catalog_path() == REPO / "models" / "catalog.json"
    entries = load_catalog()
    assert 5 <= len(entries) <= 10


def test_shipped_catalog_entries_are_well_formed() -> None:
    raw = json.loads((REPO / "models" / "catalog.json").read_text(encoding="utf-8"))
    names = set()
    for item, e in zip(raw["models"], load_catalog(), strict=True):
        assert e.file_name.endswith(".gguf") and "/" not in e.file_name
        assert e.file_name.lower() not in names
        names.add(e.file_name.lower())
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        assert e.size_bytes is None or e.size_bytes > 0
        assert e.context_length > 0
        assert e.download_page.startswith("https://")
        assert e.quantization and e.licence and e.parameters and e.name
        # A hash is only as good as its provenance: every hash says where it was read.
        assert (e.sha256 is None) == (item.get("sha256_source") is None)
        # The catalog's quantization matches the file name it recommends.
        assert e.quantization.lower() in e.file_name.lower()


def test_shipped_catalog_is_pinned_where_it_has_hashes() -> None:
    # A hash without a pinned revision goes stale the day the uploader re-uploads.
    for e in load_catalog():
        if e.sha256 is not None:
            assert re.search(r"/blob/[0-9a-f]{40}/", e.download_page), e.name


# --- Validation -----------------------------------------------------------------------------------


def test_parse_accepts_a_minimal_catalog() -> None:
    entries = parse_catalog({"version": 1, "models": [raw_entry()]})
    assert entries[0].file_name == "test.gguf"
    assert entries[0].sha256_source is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sha256": "ABC"}, r"models\[0\]\.sha256: must be 64 lowercase hex digits or null"),
        ({"sha256": "A" * 64}, r"models\[0\]\.sha256"),
        ({"size_bytes": 0}, r"models\[0\]\.size_bytes: must be positive or null"),
        ({"size_bytes": True}, r"models\[0\]\.size_bytes: wrong type bool"),
        ({"size_bytes": "10"}, r"models\[0\]\.size_bytes: wrong type str"),
        ({"context_length": -1}, r"models\[0\]\.context_length: must be positive"),
        ({"file_name": "dir/test.gguf"}, r"models\[0\]\.file_name: must be a bare"),
        ({"file_name": "test.bin"}, r"models\[0\]\.file_name"),
        ({"download_page": "ftp://x/y"}, r"models\[0\]\.download_page: must be an https"),
        ({"licence": " "}, r"models\[0\]\.licence: empty"),
        ({"sha265": "typo"}, r"models\[0\]: unknown field 'sha265'"),
    ],
)
def test_parse_rejects_malformed_entries(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog({"version": 1, "models": [raw_entry(**overrides)]})


def test_parse_rejects_missing_field() -> None:
    item = raw_entry()
    del item["licence"]
    with pytest.raises(CatalogError, match=r"missing field 'licence'"):
        parse_catalog({"version": 1, "models": [item]})


def test_parse_rejects_duplicate_file_names_ignoring_case() -> None:
    models = [raw_entry(), raw_entry(file_name="TEST.gguf")]
    with pytest.raises(
        CatalogError, match=r"models\[1\]\.file_name 'TEST.gguf' repeats models\[0\]"
    ):
        parse_catalog({"version": 1, "models": models})


def test_parse_rejects_wrong_shape_and_version() -> None:
    with pytest.raises(CatalogError, match=r'"models" list'):
        parse_catalog([])
    with pytest.raises(CatalogError, match=r"unsupported catalog version 2"):
        parse_catalog({"version": 2, "models": []})


def test_load_reports_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"model catalog not found"):
        load_catalog(tmp_path / "nope.json")
    broken = tmp_path / "catalog.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"catalog\.json: not valid JSON"):
        load_catalog(broken)


def test_find_entry_exact_then_case_insensitive() -> None:
    catalog = [entry("Model-Q4_K_M.gguf", None)]
    assert find_entry("Model-Q4_K_M.gguf", catalog) is catalog[0]
    assert find_entry("/some/dir/model-q4_k_m.gguf", catalog) is catalog[0]
    assert find_entry("other.gguf", catalog) is None


def test_models_dir_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from almanac.app.environment import models_dir

    monkeypatch.delenv("ALMANAC_MODELS_DIR", raising=False)
    assert models_dir() == default_models_dir() == REPO / "models"
    monkeypatch.setenv("ALMANAC_MODELS_DIR", str(tmp_path))
    assert models_dir() == tmp_path  # read by the application layer
    assert default_models_dir() == REPO / "models"  # the core reads no environment


# --- add_model ------------------------------------------------------------------------------------


def test_sha256_is_streamed_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = b"x" * 100_000
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    assert sha256_file(path, lambda done, total: seen.append((done, total))) == (
        hashlib.sha256(data).hexdigest()
    )
    assert seen[-1] == (100_000, 100_000)


def test_add_model_verifies_a_matching_hash(tmp_path: Path) -> None:
    path = tiny_gguf(tmp_path / "tiny.gguf")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    added = add_model(path, [entry("tiny.gguf", digest, path.stat().st_size)])
    assert added.verified is True
    assert added.sha256 == digest
    assert added.entry is not None and added.entry.file_name == "tiny.gguf"
    assert added.info.architecture == "llama"


def test_add_model_refuses_a_hash_mismatch(tmp_path: Path) -> None:
    path = tiny_gguf(tmp_path / "tiny.gguf")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    wrong = "0" * 64
    with pytest.raises(
        ModelError, match=rf"^sha256 mismatch for tiny\.gguf: expected {wrong}, got {digest} "
    ) as e:
        add_model(path, [entry("tiny.gguf", wrong)])
    assert "\n" not in str(e.value)


def test_add_model_refuses_a_size_mismatch_before_hashing(tmp_path: Path) -> None:
    path = tiny_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(ModelError, match=r"^size mismatch for tiny\.gguf: the catalog expects 5"):
        add_model(path, [entry("tiny.gguf", "0" * 64, size=5)])


def test_add_model_accepts_unknown_and_unhashed_files_unverified(tmp_path: Path) -> None:
    path = tiny_gguf(tmp_path / "mine.gguf")
    unknown = add_model(path, [entry("other.gguf", "0" * 64)])
    assert (unknown.verified, unknown.entry) == (False, None)
    unhashed = add_model(path, [entry("mine.gguf", None)])
    assert unhashed.verified is False and unhashed.entry is not None


def test_add_model_reports_inspection_errors_first(tmp_path: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_text("not a model", encoding="utf-8")
    with pytest.raises(NotAModelError):
        add_model(path, [entry("fake.gguf", "0" * 64)])
