"""A small progress bar for long evaluation runs: one self-updating line on a terminal.

Written to a stream that is not a terminal (``--progress`` into a log), it prints a plain line at
most every few seconds and always the last one, so logs stay short.
"""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 24


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    def __init__(
        self,
        stream: TextIO,
        label: str,
        *,
        enabled: bool,
        unit: str = "",
        log_interval: float = 2.0,
    ) -> None:
        self._stream = stream
        self._label = label
        self._enabled = enabled
        self._unit = unit
        self._tty = enabled and stream.isatty()
        self._interval = 0.1 if self._tty else log_interval
        self._started = time.monotonic()
        self._last = float("-inf")
        self._open = False

    def update(self, done: int, total: int, note: str = "") -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        final = total > 0 and done >= total
        if not final and now - self._last < self._interval:
            return
        self._last = now
        line = self._render(done, total, now - self._started, note)
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
            self._open = not final
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        """End a line left open (a run stopped before its total)."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False

    def _render(self, done: int, total: int, elapsed: float, note: str) -> str:
        unit = f" {self._unit}" if self._unit else ""
        if total > 0:
            filled = min(_WIDTH, _WIDTH * done // total)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            eta = elapsed / done * (total - done) if done else 0.0
            timing = f"{_duration(elapsed)} elapsed" + (f", {_duration(eta)} left" if done else "")
            text = f"{self._label} [{bar}] {done}/{total}{unit} ({timing})"
        else:
            text = f"{self._label} {done}{unit} ({_duration(elapsed)} elapsed)"
        return f"{text}, {note}" if note else text
