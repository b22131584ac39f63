"""OpenAICompatibleEngine against llama-cpp-python's own server on loopback, with the tiny model."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from almanac.core.llm.base import ChatMessage, GenerationConfig, ModelError
from almanac.core.llm.openai_engine import OpenAICompatibleEngine, ServerUnreachableError

pytestmark = pytest.mark.slow

# An upper bound for a loaded CI machine, not an expectation: the fixture returns when it answers.
READY_TIMEOUT_S = 300
QUESTION = [
    ChatMessage("system", "You are a helpful support assistant."),
    ChatMessage("user", "How do I reset my password?"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def models_answer(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/v1/models")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from llm_fixtures import tiny_model_path

    model = Path(tiny_model_path())
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not models_answer(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                pytest.fail(f"llama_cpp.server did not come up (exit {proc.poll()}):\n{tail}")
            time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture
def engine(server_url: str) -> Iterator[OpenAICompatibleEngine]:
    eng = OpenAICompatibleEngine(server_url, n_ctx=2048, timeout=60)
    yield eng
    eng.close()


def test_streams_a_chat_completion(engine: OpenAICompatibleEngine) -> None:
    pieces = list(engine.stream_chat(QUESTION, GenerationConfig(max_tokens=24, seed=7)))
    assert pieces, "the server streamed no content"
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces)


def test_base_url_with_v1_suffix_works(server_url: str) -> None:
    eng = OpenAICompatibleEngine(server_url + "/v1/", timeout=60)
    try:
        assert list(eng.stream_chat(QUESTION, GenerationConfig(max_tokens=4, seed=1)))
    finally:
        eng.close()


def test_stop_mid_stream_ends_the_answer(engine: OpenAICompatibleEngine) -> None:
    stop = threading.Event()
    before_stop: list[str] = []
    after_stop: list[str] = []
    for piece in engine.stream_chat(QUESTION, GenerationConfig(max_tokens=200, seed=3), stop):
        (after_stop if stop.is_set() else before_stop).append(piece)
        stop.set()
    assert len(before_stop) == 1
    assert len(after_stop) <= 1
    # The server noticed the closed connection and is free for the next request.
    assert list(engine.stream_chat(QUESTION, GenerationConfig(max_tokens=4, seed=1)))


def test_a_stop_text_ends_the_answer_before_it(engine: OpenAICompatibleEngine) -> None:
    config = GenerationConfig(max_tokens=60, temperature=0.0, seed=1)
    whole = "".join(engine.stream_chat(QUESTION, config))
    words = whole.split()
    assert len(words) >= 4, whole
    stop_text = words[len(words) // 2]
    cut = "".join(engine.stream_chat(QUESTION, replace(config, stop=(stop_text,))))
    assert cut == whole[: whole.index(stop_text)]


def test_stop_set_before_start_sends_nothing(engine: OpenAICompatibleEngine) -> None:
    stop = threading.Event()
    stop.set()
    assert list(engine.stream_chat(QUESTION, GenerationConfig(), stop)) == []


def test_count_tokens_uses_the_server_tokenizer(engine: OpenAICompatibleEngine) -> None:
    short = engine.count_tokens(QUESTION)
    longer = engine.count_tokens([*QUESTION, ChatMessage("user", "And my username too? " * 20)])
    assert short > 0
    assert longer > short
    # llama-cpp-python's server offers /extras/tokenize/count; the probe remembers it.
    assert engine.tokenizer == "llama-cpp-python"


def test_info_names_the_served_model(engine: OpenAICompatibleEngine) -> None:
    info = engine.info
    assert info.backend == "openai-compatible"
    assert info.model and info.model != "(server default)"
    assert info.n_ctx == 2048


def test_wrong_url_raises_a_one_line_model_error() -> None:
    port = free_port()  # nothing listens here once the probe socket is closed
    url = f"http://127.0.0.1:{port}"
    eng = OpenAICompatibleEngine(url, timeout=5)
    with pytest.raises(ModelError) as e:
        list(eng.stream_chat(QUESTION, GenerationConfig(max_tokens=4)))
    assert isinstance(e.value, ServerUnreachableError)
    assert url in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ServerUnreachableError, match=r"connection refused"):
        eng.count_tokens(QUESTION)


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ModelError, match=r"http"):
        OpenAICompatibleEngine("file:///etc/passwd")


def test_cli_ask_through_a_server(server_url: str, tmp_path: Path) -> None:
    import json

    from almanac.app.services import sample_kb_folder

    kb = tmp_path / "kb"
    ingest = subprocess.run(
        [sys.executable, "-m", "almanac", "ingest", str(sample_kb_folder()), "--kb", str(kb), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ingest.returncode == 0, ingest.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "almanac",
            "ask",
            "How do I reset my password?",
            "--kb",
            str(kb),
            "--server",
            server_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["mode"] in ("model", "not-found")
    assert answer["answer"].strip()
    assert answer["citations"] or answer["also_retrieved"]
