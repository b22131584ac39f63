"""Almanac's default model: resolved from its manifest, checked by size and SHA-256, used by `ask`
without --model, and a clear message plus passages-only answers when it is missing or damaged.

The manifests here point at the tiny test GGUF (as one file, or as parts in installed chunk
distributions like the real base's); the real default (Gemma-3-270M + Almanac's adapter) is loaded
by one test only where it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from almanac.app.environment import DEFAULT_MODEL_DIR_ENV, NO_DEFAULT_MODEL_ENV
from almanac.app.services import choose_model
from almanac.core.llm.default_model import DefaultModelError, resolve_default_model
from almanac.core.llm.quantize import quantize_gguf
from almanac.core.system.hashing import sha256_file

REPO = Path(__file__).resolve().parents[2]


def _manifest(folder: Path, base: Path, adapter: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(base, folder / "base.gguf")
    spec: dict[str, object] = {
        "name": "Tiny Default",
        "base": {
            "file": "base.gguf",
            "sha256": sha256_file(folder / "base.gguf"),
            "size_bytes": (folder / "base.gguf").stat().st_size,
            "quantization": "Q4_K_M",
        },
        "adapter": None,
    }
    if adapter is not None:
        shutil.copy(adapter, folder / adapter.name)
        spec["adapter"] = {
            "file": adapter.name,
            "sha256": sha256_file(adapter),
            "size_bytes": adapter.stat().st_size,
        }
    (folder / "default-model.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def test_resolves_and_verifies_the_manifest(tmp_path, tiny_gguf) -> None:
    folder = _manifest(tmp_path / "default", tiny_gguf)
    model = resolve_default_model(folder, verify=True)
    assert model.name == "Tiny Default"
    assert model.path == folder / "base.gguf"
    assert model.adapter is None


def test_missing_manifest_and_files_are_named(tmp_path, tiny_gguf) -> None:
    with pytest.raises(DefaultModelError, match="manifest is missing"):
        resolve_default_model(tmp_path / "nowhere")
    folder = _manifest(tmp_path / "default", tiny_gguf)
    (folder / "base.gguf").unlink()
    with pytest.raises(DefaultModelError, match="base file is missing"):
        resolve_default_model(folder)


def test_a_damaged_base_or_adapter_is_refused(tmp_path, tiny_gguf) -> None:
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF" + b"\0" * 60)
    folder = _manifest(tmp_path / "default", tiny_gguf, adapter)
    data = bytearray((folder / "base.gguf").read_bytes())
    (folder / "base.gguf").write_bytes(bytes(data[:-10]))  # truncated
    with pytest.raises(DefaultModelError, match=r"damaged: \d+ bytes, expected"):
        resolve_default_model(folder)
    data[-1] ^= 0xFF  # same size, one byte altered
    (folder / "base.gguf").write_bytes(bytes(data))
    model = resolve_default_model(folder)  # sizes alone pass
    with pytest.raises(DefaultModelError, match=r"base model base\.gguf is damaged or altered"):
        model.verify()
    shutil.copy(tiny_gguf, folder / "base.gguf")
    (folder / "adapter.gguf").write_bytes(b"GGUF" + b"\1" * 60)
    with pytest.raises(DefaultModelError, match=r"adapter adapter\.gguf is damaged or altered"):
        resolve_default_model(folder, verify=True)


def _with_runtime(folder: Path, sha256: str, size: int | None) -> None:
    manifest = folder / "default-model.json"
    spec = json.loads(manifest.read_text(encoding="utf-8"))
    spec["runtime"] = {"quantization": "Q4_0", "sha256": sha256, "size_bytes": size}
    manifest.write_text(json.dumps(spec), encoding="utf-8")


def test_the_runtime_file_is_derived_once_and_checked(tmp_path, tiny_gguf) -> None:
    # What this llama.cpp makes of the base is the expected file (the real manifest pins the hash
    # of the pinned llama.cpp's output the same way).
    expected = quantize_gguf(tiny_gguf, tmp_path / "expected.gguf", "Q4_0", requantize=True)
    folder = _manifest(tmp_path / "default", tiny_gguf)
    _with_runtime(folder, sha256_file(expected), expected.stat().st_size)
    model = resolve_default_model(folder)
    cache = tmp_path / "cache"
    first = model.prepare(cache)
    assert first.derived and first.path.parent == cache and first.path != folder / "base.gguf"
    assert first.path.read_bytes() == expected.read_bytes()
    stamp = first.path.stat().st_mtime_ns
    again = model.prepare(cache)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp  # reused
    first.path.write_bytes(first.path.read_bytes()[:-1])  # a damaged cache is made again
    assert model.prepare(cache).path.read_bytes() == expected.read_bytes()


def test_a_runtime_file_unlike_the_manifest_falls_back_to_the_base(tmp_path, tiny_gguf) -> None:
    folder = _manifest(tmp_path / "default", tiny_gguf)
    _with_runtime(folder, "0" * 64, None)
    cache = tmp_path / "cache"
    chosen = resolve_default_model(folder).prepare(cache)
    assert not chosen.derived and chosen.path == folder / "base.gguf"
    assert "differs from the manifest" in chosen.reason
    assert not any(cache.iterdir())  # nothing left to fail the same check next time
    (folder / "base.gguf").write_bytes((folder / "base.gguf").read_bytes()[:-1] + b"x")
    with pytest.raises(DefaultModelError, match="damaged or altered"):
        resolve_default_model(folder).prepare(cache)  # the base is verified first


def _install_parts(site: Path, gguf: Path, count: int = 3) -> list[Path]:
    """``gguf`` cut into ``count`` files, each in an installed distribution of its own
    (``almtest-partN``, found through ``site`` on the path) as the real base's chunk packages."""
    data = gguf.read_bytes()
    step = -(-len(data) // count)
    paths = []
    for n in range(1, count + 1):
        package = site / f"almtest_part{n}"
        (package / "data").mkdir(parents=True)
        piece = package / "data" / f"{gguf.name}.part{n - 1:02d}"
        piece.write_bytes(data[(n - 1) * step : n * step])
        info = site / f"almtest_part{n}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: almtest-part{n}\nVersion: 1.0\n", encoding="utf-8"
        )
        paths.append(piece)
    return paths


def _parts_manifest(folder: Path, gguf: Path, pieces: list[Path], site: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "Tiny In Parts",
        "base": {
            "distribution": "almtest",
            "version": "1.0",
            "parts": [
                {
                    "distribution": f"almtest-part{n}",
                    "version": "1.0",
                    "resource": piece.relative_to(site).as_posix(),
                    "sha256": sha256_file(piece),
                    "size_bytes": piece.stat().st_size,
                }
                for n, piece in enumerate(pieces, 1)
            ],
            "file_name": gguf.name,
            "sha256": sha256_file(gguf),
            "size_bytes": gguf.stat().st_size,
            "quantization": "Q4_K_M",
        },
    }
    (folder / "default-model.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


@pytest.fixture
def parts_default(tmp_path, tiny_gguf, monkeypatch) -> tuple[Path, list[Path], Path]:
    site = tmp_path / "site"
    pieces = _install_parts(site, tiny_gguf)
    monkeypatch.syspath_prepend(str(site))
    return _parts_manifest(tmp_path / "default", tiny_gguf, pieces, site), pieces, site


def test_a_base_in_parts_is_joined_once_into_the_cache(parts_default, tiny_gguf, tmp_path):
    folder, _, _ = parts_default
    cache = tmp_path / "cache"
    model = resolve_default_model(folder, cache_dir=cache)
    assert model.path.parent == cache and not model.path.exists()  # nothing written yet
    chosen = model.prepare(cache)
    assert chosen.path == model.path
    assert model.path.read_bytes() == tiny_gguf.read_bytes()
    assert [p.name for p in cache.iterdir()] == [model.path.name]  # no partial file left
    stamp = model.path.stat().st_mtime_ns
    resolve_default_model(folder, cache_dir=cache, verify=True)
    assert model.path.stat().st_mtime_ns == stamp  # reused
    model.path.write_bytes(b"GGUF" + bytes(100))  # a damaged joined file is made again
    model.verify()
    assert model.path.read_bytes() == tiny_gguf.read_bytes()


def test_a_missing_or_damaged_part_is_named_and_nothing_is_left(parts_default, tmp_path):
    folder, pieces, site = parts_default
    cache = tmp_path / "cache"
    data = bytearray(pieces[1].read_bytes())
    data[-1] ^= 0xFF  # same size, one byte altered
    pieces[1].write_bytes(bytes(data))
    model = resolve_default_model(folder, cache_dir=cache)  # sizes alone pass
    with pytest.raises(
        DefaultModelError,
        match=r"base model \(part 2 of 3\) tiny-chat-\w+\.gguf\.part01 is damaged",
    ):
        model.prepare(cache)
    assert not cache.exists() or not any(cache.iterdir())
    pieces[2].write_bytes(pieces[2].read_bytes()[:-1])
    with pytest.raises(
        DefaultModelError, match=r"\(part 3 of 3\) \S+\.part02 is damaged: \d+ bytes, expected"
    ):
        resolve_default_model(folder, cache_dir=cache)
    shutil.rmtree(site / "almtest_part1-1.0.dist-info")
    with pytest.raises(
        DefaultModelError,
        match=r"not installed \(Python package almtest-part1\): pip install almtest==1\.0$",
    ):
        resolve_default_model(folder, cache_dir=cache)


def test_choice_order_named_model_then_environment_then_default(
    tmp_path, tiny_gguf, monkeypatch
) -> None:
    folder = _manifest(tmp_path / "default", tiny_gguf)
    monkeypatch.setenv(DEFAULT_MODEL_DIR_ENV, str(folder))
    monkeypatch.delenv(NO_DEFAULT_MODEL_ENV, raising=False)
    monkeypatch.delenv("ALMANAC_MODEL", raising=False)
    chosen = choose_model()
    assert (chosen.origin, chosen.path, chosen.name) == (
        "default",
        folder / "base.gguf",
        "Tiny Default",
    )
    monkeypatch.setenv("ALMANAC_MODEL", str(tiny_gguf))
    assert choose_model().origin == "environment"
    assert choose_model(tmp_path / "mine.gguf").path == tmp_path / "mine.gguf"
    monkeypatch.delenv("ALMANAC_MODEL")
    (folder / "default-model.json").unlink()
    missing = choose_model()
    assert missing.path is None and missing.problem and "manifest is missing" in missing.problem
    monkeypatch.setenv(NO_DEFAULT_MODEL_ENV, "1")
    assert choose_model().problem is None  # deliberately passages-only: nothing to report


@pytest.fixture(scope="module")
def sample_kb_dir(tmp_path_factory, sample_kb) -> Path:
    kb = tmp_path_factory.mktemp("default-model") / "kb"
    run = subprocess.run(
        [sys.executable, "-m", "almanac", "ingest", str(sample_kb), "--kb", str(kb), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return kb


def _ask(
    kb: Path,
    env_changes: dict[str, str | None],
    *extra: str,
    question: str = "How long is the password reset link valid?",
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "almanac",
            "ask",
            question,
            "--kb",
            str(kb),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_ask_without_model_answers_with_the_default(tmp_path, tiny_gguf, sample_kb_dir) -> None:
    folder = _manifest(tmp_path / "default", tiny_gguf)
    run = _ask(
        sample_kb_dir,
        {DEFAULT_MODEL_DIR_ENV: str(folder), NO_DEFAULT_MODEL_ENV: None, "ALMANAC_MODEL": None},
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["mode"] != "sources-only", answer  # a model wrote it: the default was loaded


def test_ask_answers_with_a_default_whose_base_comes_in_parts(
    parts_default, sample_kb_dir, tmp_path
) -> None:
    folder, _, site = parts_default
    cache = tmp_path / "cache"
    run = _ask(
        sample_kb_dir,
        {
            DEFAULT_MODEL_DIR_ENV: str(folder),
            NO_DEFAULT_MODEL_ENV: None,
            "ALMANAC_MODEL": None,
            "ALMANAC_MODEL_CACHE_DIR": str(cache),
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["mode"] != "sources-only", run.stdout
    assert any(cache.glob("tiny-*.gguf"))


def test_ask_with_a_damaged_default_says_so_and_answers_with_passages(
    tmp_path, tiny_gguf, sample_kb_dir
) -> None:
    folder = _manifest(tmp_path / "default", tiny_gguf)
    data = bytearray((folder / "base.gguf").read_bytes())
    data[-1] ^= 0xFF
    (folder / "base.gguf").write_bytes(bytes(data))
    run = _ask(
        sample_kb_dir,
        {DEFAULT_MODEL_DIR_ENV: str(folder), NO_DEFAULT_MODEL_ENV: None, "ALMANAC_MODEL": None},
    )
    assert run.returncode == 0, run.stderr
    assert "damaged or altered" in run.stderr and "answering with passages only" in run.stderr
    answer = json.loads(run.stdout)
    assert answer["mode"] == "sources-only"
    assert answer["citations"], answer


def test_model_listing_shows_the_default_with_its_card(tmp_path, tiny_gguf) -> None:
    folder = _manifest(tmp_path / "default", tiny_gguf)
    (folder / "MODEL_CARD.md").write_text("# Tiny Default\n", encoding="utf-8")
    env = {**os.environ, DEFAULT_MODEL_DIR_ENV: str(folder)}
    run = subprocess.run(
        [sys.executable, "-m", "almanac", "model", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout)[0]
    assert first["default"] is True and first["name"] == "Tiny Default"
    assert first["model_card"] == str(folder / "MODEL_CARD.md") and first["problem"] is None


def _real_default_or_skip() -> None:
    from almanac.app.environment import model_cache_dir

    try:
        model = resolve_default_model(REPO / "models" / "default", cache_dir=model_cache_dir())
    except DefaultModelError as exc:
        pytest.skip(f"the real default model is not installed here: {exc}")
    if model.adapter is None:
        pytest.skip("the default model has no adapter yet")


@pytest.mark.slow
def test_the_real_default_model_answers_with_a_citation(sample_kb_dir) -> None:
    _real_default_or_skip()
    run = _ask(
        sample_kb_dir,
        {
            DEFAULT_MODEL_DIR_ENV: str(REPO / "models" / "default"),
            NO_DEFAULT_MODEL_ENV: None,
            "ALMANAC_MODEL": None,
        },
        "--temperature",
        "0",
        # A question this 270M model answers (it refuses many others: the benchmark's false
        # refusals); what is checked is that base, adapter and chat format load and cite. Its
        # greedy answers are not the same in every process: "How many devices can I sync on the
        # free plan?" was withheld in about one run of six, with the same prompt, with 1 or 2
        # fixed threads (in one process, repeated with any prompt slicing, it never changed).
        # This one was answered with a citation in 12 runs of 12.
        question="Which plan allows an unlimited number of devices?",
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["mode"] == "model", answer
    assert answer["citations"] and not answer["invalid_markers"], answer
    # Whether it states the right fact is the benchmark's job (benchmarks/answer_quality.py).


def test_the_manifests_chat_format_reaches_the_engine(tmp_path, tiny_gguf, monkeypatch) -> None:
    """A default model whose base GGUF has no chat template (Gemma's package) is run with the
    template its manifest names, by the app and `almanac ask` alike (one model choice)."""
    from almanac.app.answering import build_engine_from_settings
    from almanac.app.settings import Settings
    from llm_fixtures import strip_chat_template

    bare = strip_chat_template(tiny_gguf, tmp_path / "bare.gguf")
    folder = _manifest(tmp_path / "default", bare)
    spec = json.loads((folder / "default-model.json").read_text(encoding="utf-8"))
    spec["chat_format"] = "gemma"
    (folder / "default-model.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv(DEFAULT_MODEL_DIR_ENV, str(folder))
    monkeypatch.delenv(NO_DEFAULT_MODEL_ENV, raising=False)
    monkeypatch.delenv("ALMANAC_MODEL", raising=False)
    choice = choose_model()
    assert choice.chat_format == "gemma"
    engine = build_engine_from_settings(
        choice.path, Settings(threads=1), chat_format=choice.chat_format
    )
    assert engine is not None
    try:
        assert engine.info.chat_template == "gemma"
    finally:
        engine.close()
