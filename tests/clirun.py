"""`python -m almanac ARGS` in a child process, as a user runs it, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(
    *args: str, cache: Path | None = None, stdin: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Without $ALMANAC_MODEL (a developer's own model must not answer in the tests); with
    ``cache``, its own user cache (XDG_CACHE_HOME: the OCR cache, the model cache)."""
    env = {k: v for k, v in os.environ.items() if k != "ALMANAC_MODEL"}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "almanac", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )
