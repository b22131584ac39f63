"""`python -m almanac ARGS` in a child process with its own OCR cache (XDG_CACHE_HOME)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "almanac", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
