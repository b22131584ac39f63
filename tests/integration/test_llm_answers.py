"""End to end with a real llama.cpp model (the tiny GGUF built offline) over the sample KB."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from almanac.core.answering.answer import AnswerConfig, AnswerService
from almanac.core.answering.prompting import Source, build_messages, default_system_prompt
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.llm.base import (
    ChatMessage,
    GenerationConfig,
    ModelError,
    ModelNotFoundError,
    NotAModelError,
    TruncatedModelError,
    UnsupportedModelError,
)
from almanac.core.llm.gguf_file import inspect_gguf
from almanac.core.llm.llama_engine import LlamaCppEngine, gpu_backend_name
from almanac.core.records import AnswerMode
from almanac.core.retrieval.retrieval import Searcher
from almanac.core.store.store import Store
from almanac.core.system.hardware import physical_cores


@pytest.fixture(scope="module")
def engine(tiny_gguf):
    eng = LlamaCppEngine(tiny_gguf, n_ctx=2048)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, embedder, sample_kb):
    root = tmp_path_factory.mktemp("llm")
    docs = root / "docs"
    shutil.copytree(sample_kb, docs)
    store = Store(root / "kb", dim=embedder.dim, embedder_name=embedder.name)
    Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig())).ingest([docs])
    return root, docs, Searcher(store, embedder)


def test_engine_reports_backend_and_uses_the_gguf_template(engine) -> None:
    info = engine.info
    assert info.backend == _expected_backend(info.gpu_layers)
    assert info.chat_template == "gguf"
    assert info.threads == physical_cores()
    assert info.n_ctx == 2048
    rendered = engine.render([ChatMessage("system", "S"), ChatMessage("user", "Q")])
    assert rendered.endswith("<|im_start|>assistant\n")  # the model's own ChatML template


def test_streams_pieces_and_stops_within_one_token(engine) -> None:
    messages = build_messages(
        default_system_prompt(),
        [
            Source(
                1,
                "faq.md - Passwords",
                "The reset link expires after 30 minutes and works only once.",
            )
        ],
        [],
        "How long is the password reset link valid?",
    )
    pieces = list(engine.stream_chat(messages, GenerationConfig(max_tokens=64, temperature=0.0)))
    assert len(pieces) >= 3
    assert "[1]" in "".join(pieces)

    stop = threading.Event()
    got: list[str] = []
    for piece in engine.stream_chat(
        messages, GenerationConfig(max_tokens=64, temperature=0.0), stop
    ):
        got.append(piece)
        if len(got) == 2:
            stop.set()
    assert len(got) == 2


def test_answer_cites_passages_shown_to_the_model(engine, sample_index, embedder) -> None:
    _, docs, searcher = sample_index
    service = AnswerService(
        searcher, embedder, engine, config=AnswerConfig(max_tokens=80, temperature=0.0)
    )
    streamed: list[str] = []
    # A question the tiny model answers with a sentence its source supports: a wrong answer (it
    # says "365 hours" for the reset link's validity) is withheld, which test_answer_policy covers.
    question = "How do I reset my password?"
    answer = service.answer(question, on_token=streamed.append)
    assert answer.mode is AnswerMode.MODEL
    assert "".join(streamed).strip() == answer.text  # passed on sentence by sentence
    assert answer.citations, answer.text
    hits = searcher.search(answer.retrieval_query, 5).hits
    for c in answer.citations:
        hit = hits[c.number - 1]  # [n] is the n-th source in the prompt
        assert (c.path, c.page, c.start, c.end, c.text) == (
            hit.path,
            hit.page,
            hit.start,
            hit.end,
            hit.text,
        )
        assert Path(c.path).is_relative_to(docs)
    shown = {c.number for c in answer.citations} | {c.number for c in answer.also_retrieved}
    assert shown == set(range(1, len(hits) + 1))
    assert answer.seconds_to_first_token is not None


def test_nothing_relevant_is_refused_without_generation(engine, sample_index, embedder) -> None:
    _, _, searcher = sample_index
    answer = AnswerService(searcher, embedder, engine).answer(
        "What is a good recipe for sourdough bread?"
    )
    assert answer.mode is AnswerMode.NOT_FOUND
    assert answer.tokens_generated == 0 and answer.citations == ()


def test_small_context_never_overflows(tiny_gguf, sample_index, embedder) -> None:
    _, _, searcher = sample_index
    small = LlamaCppEngine(tiny_gguf, n_ctx=512)
    try:
        seen: list[int] = []
        original = small.count_tokens

        def counting(messages):
            n = original(messages)
            seen.append(n)
            return n

        small.count_tokens = counting  # type: ignore[method-assign]
        history = [
            ChatMessage("user", "earlier " * 60),
            ChatMessage("assistant", "reply " * 60),
        ] * 3
        service = AnswerService(
            searcher, embedder, small, config=AnswerConfig(max_tokens=128, sources=5)
        )
        answer = service.answer("How do I install Northwind Sync on Ubuntu?", history)
        assert seen[-1] <= 512 - 128  # the prompt that was sent fits with room for the answer
        assert answer.mode in (AnswerMode.MODEL, AnswerMode.NOT_FOUND)
    finally:
        small.close()


def _ask(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "almanac", "ask", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_ask_streams_and_cites(tiny_gguf, sample_index) -> None:
    root, _, _ = sample_index
    kb = str(root / "kb")
    run = _ask(
        "How do I reset my password?", "--kb", kb, "--model", str(tiny_gguf), "--temperature", "0"
    )
    assert run.returncode == 0, run.stderr
    expected = _expected_backend(_layers_offloaded(tiny_gguf))
    assert expected in run.stderr and "chat template: gguf" in run.stderr
    assert "Sources:" in run.stdout or "Also retrieved:" in run.stdout
    run = _ask("How do I reset my password?", "--kb", kb, "--model", str(tiny_gguf), "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["mode"] in ("model", "not-found")
    shown = answer["citations"] + answer["also_retrieved"]  # citations alone may be empty
    assert shown and all(
        {"number", "path", "page", "start", "end", "heading", "text"} <= set(c) for c in shown
    )
    run = _ask("How do I reset my password?", "--kb", kb, "--json")  # no model: sources-only
    assert json.loads(run.stdout)["mode"] == "sources-only"


def _expected_backend(gpu_layers: int) -> str:
    """What a CPU build reports, or a GPU build with every layer offloaded (the default)."""
    gpu = gpu_backend_name()
    if gpu is None:
        assert gpu_layers == 0
        return "llama.cpp (CPU)"
    assert gpu_layers > 0
    return f"llama.cpp ({gpu}, {gpu_layers}/{gpu_layers} layers on GPU)"


def _layers_offloaded(model: Path) -> int:
    """The layers a default ("auto") load puts on the GPU: all of them, or none on a CPU build."""
    return (inspect_gguf(model).block_count or 0) if gpu_backend_name() is not None else 0


def _bad_models(tmp_path: Path, tiny: Path) -> dict[str, tuple[Path, type[ModelError]]]:
    from gguf import GGUFWriter

    text = tmp_path / "notes.gguf"
    text.write_text("this is not a model", encoding="utf-8")
    cut = tmp_path / "cut.gguf"
    data = tiny.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    alien = tmp_path / "alien.gguf"
    writer = GGUFWriter(str(alien), "made-up-arch")
    import numpy as np

    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "missing": (tmp_path / "missing.gguf", ModelNotFoundError),
        "text": (text, NotAModelError),
        "truncated": (cut, TruncatedModelError),
        "alien": (alien, UnsupportedModelError),
    }


def test_bad_model_files_give_specific_errors(tmp_path, tiny_gguf, sample_index) -> None:
    root, _, _ = sample_index
    for name, (path, error) in _bad_models(tmp_path, tiny_gguf).items():
        with pytest.raises(error) as info:
            LlamaCppEngine(path, n_ctx=512)
        assert str(info.value) and "\n" not in str(info.value), name
        run = _ask("How do I reset my password?", "--kb", str(root / "kb"), "--model", str(path))
        assert run.returncode == 1, (name, run.stderr)
        assert (
            run.stderr.startswith("almanac: error: ") and len(run.stderr.strip().splitlines()) == 1
        )


def test_cli_model_check(tiny_gguf, tmp_path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "almanac", "model", str(tiny_gguf), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["architecture"] == "llama" and info["quantization"] == "Q4_K_M"
    assert info["chat_template"] is True and info["verified"] is False
    assert len(info["sha256"]) == 64
    listing = subprocess.run(
        [sys.executable, "-m", "almanac", "model", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert any(e["quantization"] == "Q4_K_M" for e in json.loads(listing.stdout))


def test_a_gemma_chat_goes_on_after_a_question_refused_without_the_model(
    tiny_gguf, sample_index, embedder, tmp_path
) -> None:
    """The desktop chat with the default model's turn format: after a question that retrieval
    refused (no answer of the model's in the history), the next question failed with "Gemma
    turns must alternate". Real llama.cpp, the Gemma template, the app's chat session."""
    from almanac.app.chat import ChatSession
    from almanac.app.history import HistoryStore
    from llm_fixtures import strip_chat_template

    _, _, searcher = sample_index
    bare = strip_chat_template(tiny_gguf, tmp_path / "bare.gguf")
    gemma = LlamaCppEngine(bare, n_ctx=2048, threads=1, chat_format="gemma")
    try:
        assert gemma.info.chat_template == "gemma"
        service = AnswerService(
            searcher, embedder, gemma, config=AnswerConfig(max_tokens=40, temperature=0.0)
        )
        chat = ChatSession(HistoryStore(tmp_path / "history.sqlite3"))
        refused = "What is a good recipe for sourdough bread?"
        answers = []
        for text in ("How do I reset my password?", refused, "How long is the reset link valid?"):
            question = chat.ask(text)
            answers.append(service.answer(question.text, question.prior))
            chat.record_answer(question.conversation_id, answers[-1])
        assert answers[1].mode is AnswerMode.NOT_FOUND and answers[1].tokens_generated == 0
        # The history the third question came with ends on the refused question, unanswered...
        assert (question.prior[-1].role, question.prior[-1].content) == ("user", refused)
        # ... and the model was asked all the same (its prompt rendered) and wrote an answer.
        assert answers[2].tokens_generated > 0
    finally:
        gemma.close()


def test_a_code_no_document_mentions_is_refused_without_generation(
    engine, sample_index, embedder
) -> None:
    _, _, searcher = sample_index
    answer = AnswerService(searcher, embedder, engine).answer("What does error E-1042 mean?")
    assert answer.mode is AnswerMode.NOT_FOUND and answer.tokens_generated == 0
    assert "No document mentions E-1042." in answer.text and answer.citations
