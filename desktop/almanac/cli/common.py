"""What the commands share: exit codes, the --kb and embedder options, terminal-safe output."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from almanac.core.records import IngestProgress

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


KB_HELP = "knowledge-base folder (default: $ALMANAC_KB or the user data folder)"
EMBEDDER_HELP = (
    "folder of a local sentence-transformers model "
    "(default: $ALMANAC_EMBEDDING_MODEL or the bundled all-MiniLM-L6-v2)"
)


# The same as core.embedding.EMBEDDER_BACKENDS, repeated so that --help need not import numpy.
EMBEDDER_BACKENDS = ("int8", "fp32")


_BACKEND_HELP = "how the embedding model runs: int8 (ONNX, quantized; default) or fp32 (torch)"


class CliError(Exception):
    """A failure to report as one line on stderr, exit code 1."""


def _date(text: str) -> float:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc
    return dt.datetime(day.year, day.month, day.day).timestamp()


def _kb(args: argparse.Namespace) -> Path:
    from almanac.app.services import default_kb_dir

    kb: Path | None = args.kb
    return kb if kb is not None else default_kb_dir()


def _embedding_model(args: argparse.Namespace) -> Path | None:
    from almanac.app.services import default_embedding_model

    chosen: Path | None = args.embedding_model
    return chosen if chosen is not None else default_embedding_model()


# Control characters from file names and document text must never reach a terminal raw:
# "\x1b]0;...\x07" retitles it, "\x1b[2J" clears it. C0, DEL, C1, and the bidirectional
# overrides that make a name read differently from what it is.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# The bytes of a name that were not UTF-8 (see discovery.path_key), shown as \xNN.
_NAME_BYTES = re.compile("[\U0010ff80-\U0010ffff]")


def _shown(text: str) -> str:
    """``text`` safe to print: each control character as a visible escape (\\x1b)."""
    text = _NAME_BYTES.sub(lambda m: f"\\x{ord(m.group()) - 0x10FF00:02x}", text)
    return _CONTROL_CHARS.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) <= 0xFF else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def _json_line(payload: object) -> str:
    # JSON escapes C0 itself; C1 controls and bidi overrides would still be printed raw.
    return _CONTROL_CHARS.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(payload, ensure_ascii=False)
    )


class _ProgressPrinter:
    """One self-updating line on a terminal; a line every few seconds otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = stream.isatty()
        self._last = 0.0
        self._printed = False

    def __call__(self, p: IngestProgress) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if not self._tty and now - self._last < 2.0 and p.files_done < p.files_total:
            return
        self._last = now
        line = (
            f"files {p.files_done}/{p.files_total} ({p.files_skipped} unchanged, "
            f"{p.files_failed} failed), chunks {p.chunks_done}, {p.chunks_per_second:.1f} chunks/s"
        )
        if self._tty:
            self._stream.write("\r\x1b[K" + line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._printed = True

    def finish(self) -> None:
        if self._enabled and self._tty and self._printed:
            self._stream.write("\n")
            self._stream.flush()


def _print_rows(rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'metric'.ljust(width)}  {'value':>8}")
    print(f"{'-' * width}  {'-' * 8}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value:>8}")
