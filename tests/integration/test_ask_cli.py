"""``almanac ask`` beyond one question: ``--jsonl`` batches with the model loaded once, bad lines
answered with an error line, ``--lora``, and how a withheld answer is printed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from almanac.cli import AnswerDefaults, _print_answer_footer
from almanac.core.answering.answer import (
    NOT_FOUND_TEXT,
    SHORT_ANSWER_TOKENS,
    AnswerConfig,
)
from almanac.core.records import Answer, AnswerMode
from integration.test_llm_engine_options import make_lora


def cli(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "almanac", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def kb(tmp_path_factory, sample_kb) -> Path:
    root = tmp_path_factory.mktemp("ask-cli")
    shutil.copytree(sample_kb, root / "docs")
    run = cli("ingest", root / "docs", "--kb", root / "kb", "-q")
    assert run.returncode == 0, run.stderr
    return root / "kb"


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_jsonl_answers_every_line_and_reports_bad_ones(kb, tiny_gguf) -> None:
    stdin = "\n".join(
        [
            json.dumps({"id": "a", "text": "How do I reset my password?"}),
            "this is not json",
            json.dumps({"id": "c"}),
            "",
            json.dumps({"id": 7, "text": "What is the capital of France?"}),
        ]
    )
    run = cli("ask", "--jsonl", "--kb", kb, "--model", tiny_gguf, "--temperature", "0", stdin=stdin)
    assert run.returncode == 1, run.stderr  # some lines failed
    out = _lines(run.stdout)
    assert [o["id"] for o in out] == ["a", 2, "c", 7]
    assert "error" in out[1] and "line 2" in str(out[1]["error"])
    assert "error" in out[2] and "text" in str(out[2]["error"])
    france = "What is the capital of France?"
    single = cli("ask", france, "--kb", kb, "--model", tiny_gguf, "--json")
    assert single.returncode == 0, single.stderr
    # The same fields as ask --json, plus the id.
    for answer in (out[0], out[3]):
        assert set(answer) == set(json.loads(single.stdout)) | {"id"}
    assert out[3]["mode"] == "not-found" and out[3]["answer"] == NOT_FOUND_TEXT
    assert out[0]["mode"] in ("model", "not-found") and out[0]["citations"]


def test_jsonl_all_good_exits_0_and_loads_the_model_once(kb, tiny_gguf) -> None:
    questions = ["How do I reset my password?", "Which ports does LAN sync use?"] * 2
    stdin = "".join(json.dumps({"id": i, "text": q}) + "\n" for i, q in enumerate(questions))
    run = cli("ask", "--jsonl", "--kb", kb, "--model", tiny_gguf, stdin=stdin)
    assert run.returncode == 0, run.stderr
    assert [o["id"] for o in _lines(run.stdout)] == [0, 1, 2, 3]
    assert "model:" not in run.stderr  # the banner is for interactive use only


def test_question_and_jsonl_are_exclusive(kb) -> None:
    assert cli("ask", "--kb", kb).returncode == 2
    assert cli("ask", "q", "--jsonl", "--kb", kb, stdin="").returncode == 2


def test_lora_adapter_from_the_command_line(kb, tiny_gguf, tmp_path) -> None:
    adapter = make_lora(tiny_gguf, tmp_path / "adapter.gguf")
    question = "How long is the password reset link valid?"
    run = cli("ask", question, "--kb", kb, "--model", tiny_gguf, "--lora", adapter)
    assert run.returncode == 0, run.stderr
    assert "LoRA adapter.gguf" in run.stderr
    run = cli("ask", question, "--kb", kb, "--model", tiny_gguf, "--lora", tmp_path / "no.gguf")
    assert run.returncode == 1
    assert run.stderr.startswith("almanac: error: LoRA adapter not found")


def _withheld() -> Answer:
    return Answer(
        question="What does error E-1042 mean?",
        text=NOT_FOUND_TEXT,
        mode=AnswerMode.NOT_FOUND,
        citations=(),
        also_retrieved=(),
        grounded=True,
        unsupported_text="It is an Azure vulnerability [1].\nReboot twice.",
    )


def test_withheld_text_is_printed_only_on_request(capsys) -> None:
    _print_answer_footer(_withheld())
    out = capsys.readouterr().out
    assert "Azure" not in out and "--show-unsupported" in out
    _print_answer_footer(_withheld(), show_unsupported=True)
    out = capsys.readouterr().out
    assert "Unsupported by your documents" in out
    assert "  | It is an Azure vulnerability [1]." in out and "  | Reboot twice." in out


def test_help_defaults_match_the_core() -> None:
    assert AnswerDefaults.max_tokens == AnswerConfig().max_tokens
    assert AnswerDefaults.short == SHORT_ANSWER_TOKENS
