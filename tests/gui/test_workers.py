"""TaskRunner and ModelWorker: callbacks on the GUI thread, cancel, stop, one thread per engine."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from almanac.core.answering.answer import AnswerConfig, AnswerService
from almanac.core.llm.base import EngineInfo, ModelError
from almanac.core.records import Answer, AnswerMode
from almanac.ui.workers import ModelWorker, TaskRunner, error_message
from fakes import FakeEngine, FakeService

GUI = threading.get_ident()  # pytest (and so Qt's GUI thread) runs tests on the main thread


@pytest.fixture
def runner():
    r = TaskRunner(max_threads=2)
    yield r
    assert r.shutdown(5000)


@pytest.fixture
def worker():
    w = ModelWorker()
    yield w
    assert w.shutdown(10000)


# --- TaskRunner --------------------------------------------------------------------------------


def test_success_arrives_on_the_gui_thread(qtbot, runner) -> None:
    got: list[tuple[int, int]] = []
    handle = runner.submit(
        lambda progress, cancel: threading.get_ident(),
        on_success=lambda worker_id: got.append((worker_id, threading.get_ident())),
    )
    qtbot.waitUntil(lambda: handle.done, timeout=5000)
    [(worker_id, callback_id)] = got
    assert worker_id != GUI  # the work ran elsewhere ...
    assert callback_id == GUI  # ... and its result came back to the GUI thread
    assert runner.active_count() == 0 and not handle.cancelled


def test_error_becomes_one_line_and_is_logged_with_traceback(qtbot, runner, caplog) -> None:
    errors: list[tuple[str, int]] = []
    succeeded: list[object] = []

    def fail(progress, cancel):
        raise ValueError("the file is not a PDF\nsecond line")

    caplog.set_level(logging.ERROR, logger="almanac.ui.workers")
    handle = runner.submit(
        fail,
        on_success=succeeded.append,
        on_error=lambda message: errors.append((message, threading.get_ident())),
    )
    qtbot.waitUntil(lambda: handle.done, timeout=5000)
    assert errors == [("the file is not a PDF", GUI)] and succeeded == []
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is ValueError  # the traceback is in the log


def test_unexpected_errors_keep_their_type_name() -> None:
    assert error_message(KeyError("chunks")) == "KeyError: 'chunks'"
    assert error_message(RuntimeError()) == "RuntimeError"
    assert error_message(ModelError("not a GGUF file")) == "not a GGUF file"


def test_progress_arrives_in_order_on_the_gui_thread(qtbot, runner) -> None:
    seen: list[tuple[object, int]] = []
    results: list[str] = []

    def work(progress, cancel):
        for i in range(200):
            progress(i)
            if i % 20 == 0:
                time.sleep(0.005)
        return "ok"

    handle = runner.submit(
        work,
        on_success=results.append,
        on_progress=lambda value: seen.append((value, threading.get_ident())),
    )
    qtbot.waitUntil(lambda: handle.done, timeout=5000)
    values = [v for v, _ in seen]
    assert values and values[-1] == 199  # coalesced, but the latest value always arrives
    assert values == sorted(set(values))  # in order, never repeated
    assert {t for _, t in seen} == {GUI}
    assert results == ["ok"]


def test_cancel_stops_a_long_task(qtbot, runner) -> None:
    started = threading.Event()
    results: list[str] = []

    def long_task(progress, cancel):
        started.set()
        deadline = time.monotonic() + 30
        while not cancel.is_set():
            if time.monotonic() > deadline:
                return "ran to the end"
            time.sleep(0.01)
        return "cancelled"

    handle = runner.submit(long_task, on_success=results.append)
    assert started.wait(5)
    t0 = time.monotonic()
    handle.cancel()
    qtbot.waitUntil(lambda: handle.done, timeout=5000)
    assert time.monotonic() - t0 < 5
    assert handle.cancelled and results == ["cancelled"]


def test_a_task_cancelled_before_it_starts_never_runs(qtbot) -> None:
    runner = TaskRunner(max_threads=1)
    release = threading.Event()
    ran: list[str] = []
    try:
        first = runner.submit(lambda p, c: release.wait(10))
        second = runner.submit(lambda p, c: ran.append("second"), on_success=ran.append)
        second.cancel()
        release.set()
        qtbot.waitUntil(lambda: first.done and second.done, timeout=5000)
        assert ran == []
    finally:
        assert runner.shutdown(5000)


def test_raising_after_cancel_is_not_an_error(qtbot, runner) -> None:
    errors: list[str] = []
    started = threading.Event()

    def work(progress, cancel):
        started.set()
        cancel.wait(10)
        raise InterruptedError("stopped")

    handle = runner.submit(work, on_error=errors.append)
    assert started.wait(5)
    handle.cancel()
    qtbot.waitUntil(lambda: handle.done, timeout=5000)
    assert errors == []


def test_shutdown_cancels_and_waits_for_running_work(qtbot) -> None:
    runner = TaskRunner(max_threads=2)
    started = threading.Barrier(3)
    finished: list[int] = []
    delivered: list[object] = []

    def work(progress, cancel):
        started.wait(5)
        cancel.wait(30)
        time.sleep(0.2)  # cleanup after the cancel: shutdown must wait for it
        finished.append(threading.get_ident())
        return "late"

    handles = [runner.submit(work, on_success=delivered.append) for _ in range(2)]
    started.wait(5)
    assert runner.active_count() == 2
    t0 = time.monotonic()
    assert runner.shutdown(5000)
    assert 0.2 <= time.monotonic() - t0 < 5
    assert len(finished) == 2  # both ended before shutdown returned
    assert all(h.cancelled and h.done for h in handles)
    assert runner.active_count() == 0
    qtbot.wait(50)
    assert delivered == []  # nothing calls back after shutdown
    with pytest.raises(RuntimeError):
        runner.submit(lambda p, c: None)


# --- ModelWorker with a fake engine ------------------------------------------------------------


def _load(qtbot, worker: ModelWorker, factory) -> object:
    with qtbot.waitSignal(worker.loaded, timeout=10000) as blocker:
        worker.load(factory)
    return blocker.args[0]


def test_tokens_stream_to_the_gui_and_the_engine_stays_on_one_thread(qtbot, worker) -> None:
    engines: list[FakeEngine] = []

    def factory() -> FakeEngine:
        engines.append(FakeEngine(["Hello", ", ", "world", " [1]"]))
        return engines[-1]

    info = _load(qtbot, worker, factory)
    assert isinstance(info, EngineInfo) and info.model == "fake.gguf"
    assert worker.info == info
    tokens: list[tuple[str, int]] = []
    worker.token.connect(lambda piece: tokens.append((piece, threading.get_ident())))
    with qtbot.waitSignal(worker.answered, timeout=10000) as blocker:
        worker.ask(FakeService, "hi?", [])
        assert worker.is_busy()
    answer = blocker.args[0]
    assert isinstance(answer, Answer) and answer.text == "Hello, world [1]"
    assert [p for p, _ in tokens] == ["Hello", ", ", "world", " [1]"]
    assert {t for _, t in tokens} == {GUI}
    assert not worker.is_busy()

    assert worker.shutdown(10000) and not worker.is_running()
    [engine] = engines
    assert engine.closed
    [model_thread] = engine.all_threads()  # created, used and closed on one thread ...
    assert model_thread != GUI  # ... which is not the GUI thread
    assert set(engine.threads) == {"init", "stream", "close"}


def test_stop_ends_generation_early(qtbot, worker) -> None:
    _load(qtbot, worker, lambda: FakeEngine([f"t{i} " for i in range(2000)], delay=0.005))
    tokens: list[str] = []

    def on_token(piece: str) -> None:
        tokens.append(piece)
        if len(tokens) == 3:
            worker.stop()

    worker.token.connect(on_token)
    with qtbot.waitSignal(worker.answered, timeout=10000) as blocker:
        worker.ask(FakeService, "long?", [])
    answer = blocker.args[0]
    assert answer.stopped
    assert answer.tokens_generated < 200  # stopped within a few tokens, not after 2000
    qtbot.wait(50)  # tokens still queued at the stop arrive, none after the answer
    assert len(tokens) == answer.tokens_generated


def test_load_replaces_and_closes_the_previous_engine(qtbot, worker) -> None:
    first, second = FakeEngine(["a"]), FakeEngine(["b"])
    # The engine objects are built here only for bookkeeping; what matters is close's thread.
    _load(qtbot, worker, lambda: first)
    _load(qtbot, worker, lambda: second)
    assert first.closed and not second.closed
    assert first.threads["close"] != {GUI}
    with qtbot.waitSignal(worker.answered, timeout=10000) as blocker:
        worker.ask(FakeService, "which?", [])
    assert blocker.args[0].text == "b"


def test_load_failure_and_answer_failure_are_reported(qtbot, worker) -> None:
    def broken() -> FakeEngine:
        raise ModelError("notes.gguf is not a GGUF model file")

    with qtbot.waitSignal(worker.load_failed, timeout=10000) as blocker:
        worker.load(broken)
    assert blocker.args == ["notes.gguf is not a GGUF model file"]

    def failing_service(engine):
        raise RuntimeError("index closed")

    with qtbot.waitSignal(worker.failed, timeout=10000) as blocker:
        worker.ask(failing_service, "q", [])
    assert blocker.args == ["RuntimeError: index closed"]
    assert not worker.is_busy()


def test_no_model_loads_as_none(qtbot, worker) -> None:
    assert _load(qtbot, worker, lambda: None) is None
    assert worker.info is None


def test_shutdown_without_start_is_a_no_op() -> None:
    w = ModelWorker()
    assert w.shutdown() and not w.is_running()


# --- ModelWorker with the real tiny GGUF -------------------------------------------------------


def test_real_tiny_model_answers_through_the_worker(qtbot, worker, make_kb, embedder, tmp_path):
    from almanac.core.llm.llama_engine import LlamaCppEngine
    from llm_fixtures import tiny_model_path

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.md").write_text(
        "# Passwords\n\n## Resetting your password\n\n"
        "Open Settings > Account and choose Reset password. The reset link is emailed to you, "
        "expires after 30 minutes and works only once.\n",
        encoding="utf-8",
    )
    kb = make_kb()
    kb.ingestor.ingest([docs])
    model = tiny_model_path()
    created_on: list[int] = []

    def factory() -> LlamaCppEngine:
        created_on.append(threading.get_ident())
        return LlamaCppEngine(model, n_ctx=2048)

    def service_factory(engine):
        return AnswerService(
            kb.searcher, embedder, engine, config=AnswerConfig(max_tokens=64, temperature=0.0)
        )

    info = _load(qtbot, worker, factory)
    assert isinstance(info, EngineInfo) and info.backend.startswith("llama.cpp")
    tokens: list[str] = []
    worker.token.connect(tokens.append)
    with qtbot.waitSignal(worker.answered, timeout=120000) as blocker:
        worker.ask(service_factory, "How long is the password reset link valid?", [])
    answer = blocker.args[0]
    assert answer.mode in (AnswerMode.MODEL, AnswerMode.NOT_FOUND)
    # Streamed a sentence at a time (see AnswerService): the pieces add up to the answer shown.
    assert tokens and answer.tokens_generated >= len(tokens)
    assert "".join(tokens).strip() == answer.text.strip()
    shown = answer.citations + answer.also_retrieved  # citations alone may be empty
    assert shown and all(Path(c.path).parent == docs for c in shown)
    assert created_on and created_on[0] != GUI
    kb.searcher.close()
