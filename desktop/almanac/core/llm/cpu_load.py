"""How many cores other processes are keeping busy right now, from /proc/stat.

llama.cpp's threads meet at a barrier after every operation: when one of them shares its core
with another process, every token waits for the scheduler to give it a slice. On 2 cores with
one kept busy, 2 threads fell from 100 to 3.8 tokens/s while 1 thread kept 65. So the thread
count is chosen per answer (and re-checked while generating) from what the others use now.

Our own CPU time is subtracted (os.times covers every thread of this process), so our own
generation never reads as "load". Linux only; elsewhere the reading is None and the caller keeps
its thread count.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class _Reading:
    wall: float
    busy: float  # seconds of CPU time the whole machine spent busy (all cores)
    own: float  # seconds of CPU time this process spent (all its threads)


def _read(stat_path: str = "/proc/stat") -> _Reading | None:
    try:
        with open(stat_path, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    # user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - values[4]
    t = os.times()
    return _Reading(time.monotonic(), busy / _CLK_TCK, t.user + t.system)


class CpuLoad:
    """``others_busy()``: cores' worth of CPU that other processes used over a recent window.

    A window is the time since the previous reading when that lies between ``min_window`` and
    ``max_window`` seconds (free: e.g. the last stretch of generation); otherwise a fresh window
    of ``min_window`` seconds is waited for. /proc/stat counts in 10 ms ticks, so 50 ms on 2 cores
    is 10 ticks: coarse, but enough to tell an idle core from a busy one.
    """

    def __init__(
        self, *, min_window: float = 0.05, max_window: float = 2.0, stat_path: str = "/proc/stat"
    ) -> None:
        self.min_window = min_window
        self.max_window = max_window
        self._stat_path = stat_path
        self._last = _read(stat_path)

    def others_busy(self) -> float | None:
        now = _read(self._stat_path)
        if now is None:
            return None
        last = self._last
        if last is None or not self.min_window <= now.wall - last.wall <= self.max_window:
            last = now
            time.sleep(self.min_window)
            now = _read(self._stat_path)
            if now is None:
                return None
        self._last = now
        wall = now.wall - last.wall
        if wall <= 0:
            return None
        others = (now.busy - last.busy) - (now.own - last.own)
        return max(0.0, others / wall)

    def seconds_since_reading(self) -> float:
        return float("inf") if self._last is None else time.monotonic() - self._last.wall


def threads_for_load(cores: int, others_busy: float | None) -> int:
    """Threads that each get a core of their own: the cores others leave free, at least one.

    Half a core or more of foreign load counts as a taken core: a thread sharing a core half the
    time already stalls every barrier.
    """
    if others_busy is None:
        return cores
    taken = int(others_busy + 0.5)
    return max(1, cores - taken)
