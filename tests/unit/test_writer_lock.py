from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from almanac.core.indexing.writer_lock import WriteCancelled, exclusive_writer


def test_second_writer_is_refused_across_processes(tmp_path: Path) -> None:
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is False
        code = (
            "import sys; from pathlib import Path\n"
            "from almanac.core.indexing.writer_lock import exclusive_writer, WriterBusyError\n"
            "try:\n"
            "    with exclusive_writer(Path(sys.argv[1])): sys.exit(0)\n"
            "except WriterBusyError as e:\n"
            "    print(e); sys.exit(3)\n"
        )
        run = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
        )
        assert run.returncode == 3, run.stderr
        assert "another Almanac process is updating" in run.stdout
    # Released: the next writer gets it.
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is False


def test_crash_is_detected_by_the_next_writer(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path\n"
        "from almanac.core.indexing.writer_lock import exclusive_writer\n"
        "with exclusive_writer(Path(sys.argv[1])):\n"
        "    os._exit(9)\n"  # dies holding the lock, like kill -9
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is True
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is False


def test_exception_inside_keeps_the_dirty_marker(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), exclusive_writer(tmp_path):
        raise RuntimeError("boom")
    with exclusive_writer(tmp_path) as crashed:
        assert crashed is True
    # The same thread may nest holds: the inner one neither waits nor touches the marker.
    with exclusive_writer(tmp_path) as outer, exclusive_writer(tmp_path) as inner:
        assert (outer, inner) == (False, False)
        assert (tmp_path / "ingest.dirty").exists()
    assert not (tmp_path / "ingest.dirty").exists()


def test_threads_of_one_process_queue_instead_of_failing(tmp_path: Path) -> None:
    """Only other processes are locked out: a second thread waits its turn, whatever ``wait``."""
    holding = threading.Event()
    release = threading.Event()
    order: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        with exclusive_writer(tmp_path):
            order.append("first in")
            holding.set()
            release.wait(30)
            order.append("first out")

    def second() -> None:
        try:
            with exclusive_writer(tmp_path, wait=0.0):
                order.append("second in")
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=first)
    a.start()
    assert holding.wait(30)
    b = threading.Thread(target=second)
    b.start()
    release.set()
    a.join(30)
    b.join(30)
    assert errors == []
    assert order == ["first in", "first out", "second in"]


def test_waiting_for_another_process_says_so_and_can_be_cancelled(tmp_path: Path) -> None:
    with _held_by_another_process(tmp_path):
        cancel = threading.Event()
        told: list[str] = []

        def on_wait(message: str) -> None:
            told.append(message)
            cancel.set()  # the user gives up as soon as they are told

        with (
            pytest.raises(WriteCancelled),
            exclusive_writer(tmp_path, wait=None, cancel=cancel, on_wait=on_wait),
        ):
            pass
        assert len(told) == 1 and "another Almanac process is updating" in told[0]
        assert "waiting" in told[0]


def test_a_waiting_writer_proceeds_once_the_other_process_is_done(tmp_path: Path) -> None:
    told = threading.Event()
    entered = threading.Event()

    def writer() -> None:
        with exclusive_writer(tmp_path, wait=None, on_wait=lambda _m: told.set()):
            entered.set()

    with _held_by_another_process(tmp_path):
        thread = threading.Thread(target=writer)
        thread.start()
        assert told.wait(30), "the writer never said it was waiting"
        assert not entered.is_set()
    thread.join(30)
    assert entered.is_set()


@contextlib.contextmanager
def _held_by_another_process(kb_dir: Path) -> Iterator[None]:
    """A child process holding the lock until the block ends (it says when it has it)."""
    code = (
        "import sys; from pathlib import Path\n"
        "from almanac.core.indexing.writer_lock import exclusive_writer\n"
        "with exclusive_writer(Path(sys.argv[1])):\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(kb_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        yield
    finally:
        assert child.stdin is not None
        child.stdin.write("done\n")
        child.stdin.close()
        child.wait(30)
