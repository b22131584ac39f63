"""The one writer of a knowledge base: concurrent writers of one process take turns on one queue
(real store, real embedder, real files); none of them ever sees the cross-process lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from almanac.core.indexing.ingest import posix
from almanac.core.indexing.writer_lock import WriteCancelled, WriterBusyError
from almanac.core.store.store import Store

from kbcheck import assert_consistent


def _folder(root: Path, name: str, count: int) -> Path:
    folder = root / name
    folder.mkdir()
    for i in range(count):
        (folder / f"{name}-{i:02d}.md").write_text(
            f"# {name} {i}\n\nThe {name} note number {i} covers shelf {i}.\n", encoding="utf-8"
        )
    return folder


def test_two_threads_writing_at_once_both_succeed(kb, tmp_path: Path) -> None:
    first = _folder(tmp_path, "alpha", 12)
    second = _folder(tmp_path, "beta", 12)
    doomed = _folder(tmp_path, "gamma", 3)
    kb.ingestor.ingest([doomed])
    start = threading.Barrier(3, timeout=60)
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def write(name: str, action) -> None:
        try:
            start.wait()
            results[name] = action()
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=("alpha", lambda: kb.ingestor.ingest([first]))),
        threading.Thread(target=write, args=("beta", lambda: kb.ingestor.ingest([second]))),
        threading.Thread(target=write, args=("gamma", lambda: kb.ingestor.remove([doomed]))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors
    assert not any(isinstance(e, WriterBusyError) for e in errors)
    assert results["gamma"] == 3
    documents = set(kb.store.documents())
    expected = {posix(p) for p in [*first.iterdir(), *second.iterdir()]}
    assert documents == expected
    assert_consistent(kb.store)


def test_a_queued_write_cancelled_returns_at_once(kb, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "delta", 2)
    running = threading.Event()
    release = threading.Event()

    def blocking(_cancel: threading.Event) -> str:
        running.set()
        release.wait(60)
        return "first"

    first = kb.ingestor.writer.submit("hold the writer", blocking)
    assert running.wait(30)
    cancel = threading.Event()
    outcome: list[BaseException | object] = []
    waiting = threading.Thread(
        target=lambda: outcome.append(_capture(lambda: kb.ingestor.ingest([folder], cancel=cancel)))
    )
    waiting.start()
    cancel.set()
    waiting.join(30)
    # It gave up while the first job still held the writer: nothing waited for that job.
    assert not waiting.is_alive() and not first.done
    assert len(outcome) == 1 and isinstance(outcome[0], WriteCancelled)
    release.set()
    assert first.result(timeout=30) == "first"
    assert kb.store.documents() == {}


def test_a_running_write_sees_its_cancel_event(kb) -> None:
    running = threading.Event()

    def job(cancel: threading.Event) -> bool:
        running.set()
        return cancel.wait(60)

    handle = kb.ingestor.writer.submit("cancellable", job)
    assert running.wait(30)
    handle.cancel()
    assert handle.result(timeout=60) is True  # it ended because it saw the event
    assert kb.ingestor.writer.wait_idle(30)


def test_a_job_failure_reaches_its_caller_and_the_writer_goes_on(kb, tmp_path: Path) -> None:
    def broken(_cancel: threading.Event) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        kb.ingestor.writer.run("broken", broken)
    folder = _folder(tmp_path, "epsilon", 2)
    assert kb.ingestor.ingest([folder]).added == 2


def _capture(action) -> object:
    try:
        return action()
    except BaseException as exc:  # the test inspects it
        return exc


def test_cli_remove_waits_for_another_writer_process(kb, tmp_path: Path) -> None:
    """`almanac remove` while the app indexes: it says it waits, then removes (no failure)."""
    folder = _folder(tmp_path, "zeta", 3)
    kb.ingestor.ingest([folder])
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(kb.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    remove = subprocess.Popen(
        [sys.executable, "-m", "almanac", "remove", str(folder), "--kb", str(kb.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert remove.stderr is not None
        lines: list[str] = []
        while not lines or "waiting" not in lines[-1]:
            line = remove.stderr.readline()
            assert line, f"almanac remove ended without waiting: {lines}"
            lines.append(line)
        assert "another Almanac process is updating" in lines[-1], lines
        assert remove.poll() is None  # still waiting, not failed
    finally:
        assert holder.stdin is not None
        holder.stdin.write("done\n")
        holder.stdin.close()
        holder.wait(60)
    out, err = remove.communicate(timeout=120)
    assert remove.returncode == 0, err
    assert "removed 3 documents" in out
    assert Store.open_existing(kb.path).documents() == {}


_HOLD_LOCK = (
    "import sys; from pathlib import Path\n"
    "from almanac.core.indexing.writer_lock import exclusive_writer\n"
    "with exclusive_writer(Path(sys.argv[1])):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.readline()\n"
)
