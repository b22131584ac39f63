"""The hostile suite runs the real CLI in subprocesses whose memory and CPU time are measured by
the kernel (``wait4``, in a small launcher), under an address-space limit so a regression can't
exhaust the machine."""

from __future__ import annotations

import json
import os
import signal
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


# The measured process is started by this small launcher, not by the test process: the kernel
# counts a process's peak RSS from before its exec too, and a child forked from pytest (well over
# 1 GiB late in the suite) started out with pytest's resident pages in its count. The launcher
# (a fresh interpreter, ~10 MB) limits the address space, runs the command, and reports the
# command's own rusage.
_LAUNCHER = """
import json, os, resource, subprocess, sys
limit = int(os.environ.pop("ALMANAC_TEST_AS_LIMIT"))
report = os.environ.pop("ALMANAC_TEST_RUSAGE")
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
with open(report, "w") as f:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss,
               "cpu": usage.ru_utime + usage.ru_stime}, f)
"""


def run_cli(*args: str, deadline: float = DEADLINE) -> Run:
    """``almanac ARGS`` in a child process; its peak RSS and CPU time as the kernel counted them."""
    return _run_child(["-m", "almanac.cli", *args], deadline)


def run_python(script: str, *args: str, deadline: float = DEADLINE) -> Run:
    """``python -c SCRIPT ARGS``, measured the same way."""
    return _run_child(["-c", script, *args], deadline)


def _run_child(argv: list[str], deadline: float) -> Run:
    # An earlier PYTHONPATH comes first: the benchmark measures an older checkout that way.
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO / "desktop")) if p)
    start = time.monotonic()
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "rusage.json"
        env = dict(
            os.environ,
            PYTHONPATH=path,
            PYTHONIOENCODING="utf-8",
            ALMANAC_TEST_AS_LIMIT=str(ADDRESS_SPACE_LIMIT),
            ALMANAC_TEST_RUSAGE=str(report),
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, sys.executable, *argv],
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,  # a hung command is killed with its launcher
        )
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"{' '.join(argv)} still running after {deadline} s") from None
        measured = json.loads(report.read_text(encoding="utf-8"))
        out.seek(0)
        err.seek(0)
        return Run(
            int(measured["returncode"]),
            out.read().decode("utf-8", errors="replace"),
            err.read().decode("utf-8", errors="replace"),
            int(measured["maxrss_kib"]) * 1024,
            float(measured["cpu"]),
            time.monotonic() - start,
        )
