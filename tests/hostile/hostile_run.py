"""The hostile suite runs the real CLI in subprocesses whose memory and CPU time are measured by
the kernel (``wait4``), under an address-space limit so a regression can't exhaust the machine."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Far above the 1 GB target: a regression fails with MemoryError instead of swapping the machine.
ADDRESS_SPACE_LIMIT = 4 * 2**30
DEADLINE = 300.0  # a hang (a FIFO opened for reading) fails the test instead of blocking it


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    max_rss_bytes: int
    cpu_seconds: float
    wall_seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_cli(*args: str, deadline: float = DEADLINE) -> Run:
    """``almanac ARGS`` in a child process; its peak RSS and CPU time as the kernel counted them."""
    return _run_child(["-m", "almanac.cli", *args], deadline)


def run_python(script: str, *args: str, deadline: float = DEADLINE) -> Run:
    """``python -c SCRIPT ARGS``, measured the same way."""
    return _run_child(["-c", script, *args], deadline)


def _run_child(argv: list[str], deadline: float) -> Run:
    # An earlier PYTHONPATH comes first: the benchmark measures an older checkout that way.
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO / "desktop")) if p)
    env = dict(os.environ, PYTHONPATH=path, PYTHONIOENCODING="utf-8")
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=out,
            stderr=err,
            env=env,
            preexec_fn=_limit_memory,
        )
        end = time.monotonic() + deadline
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > end:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise AssertionError(f"{' '.join(argv)} still running after {deadline} s")
            time.sleep(0.1)
        proc.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it, not Popen
        out.seek(0)
        err.seek(0)
        return Run(
            os.waitstatus_to_exitcode(status),
            out.read().decode("utf-8", errors="replace"),
            err.read().decode("utf-8", errors="replace"),
            usage.ru_maxrss * 1024,
            usage.ru_utime + usage.ru_stime,
            time.monotonic() - start,
        )
