"""Thread counts from other processes' CPU use (/proc/stat), read from a file we write."""

from __future__ import annotations

from pathlib import Path

from almanac.core.llm import cpu_load
from almanac.core.llm.cpu_load import CpuLoad, threads_for_load


def test_threads_leave_busy_cores_to_others() -> None:
    assert threads_for_load(2, 0.0) == 2
    assert threads_for_load(2, 0.3) == 2  # a background blip does not cost a thread
    assert threads_for_load(2, 0.9) == 1
    assert threads_for_load(2, 2.0) == 1  # never fewer than one
    assert threads_for_load(8, 3.2) == 5
    assert threads_for_load(4, None) == 4  # no reading: all cores


def _stat(path: Path, user: int, idle: int) -> None:
    # cpu  user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0\n", "ascii")


def test_others_busy_counts_foreign_cpu_time_only(tmp_path, monkeypatch) -> None:
    stat = tmp_path / "stat"
    _stat(stat, user=1000, idle=5000)
    clock = iter([10.0, 10.5, 11.0])
    own = iter([2.0, 2.0, 2.25])
    monkeypatch.setattr(cpu_load.time, "monotonic", lambda: next(clock))

    class Times:
        def __init__(self, seconds: float) -> None:
            self.user, self.system = seconds, 0.0

    monkeypatch.setattr(cpu_load.os, "times", lambda: Times(next(own)))
    monkeypatch.setattr(cpu_load, "_CLK_TCK", 100)
    load = CpuLoad(stat_path=str(stat))
    # 0.5 s later the machine spent 50 more ticks (0.5 s) busy, none of it ours: one core busy.
    _stat(stat, user=1050, idle=5050)
    assert load.others_busy() == 1.0
    # The next 0.5 s: 0.5 s busy again, but 0.25 s of it was this process.
    _stat(stat, user=1100, idle=5100)
    assert load.others_busy() == 0.5


def test_no_proc_stat_means_no_reading(tmp_path) -> None:
    load = CpuLoad(stat_path=str(tmp_path / "missing"), min_window=0.0)
    assert load.others_busy() is None
