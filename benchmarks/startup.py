"""Start-up time of the desktop app: from launching ``python -m almanac`` to its window on screen.

Two moments per start: the main window on screen and usable (conversations, the question box;
the knowledge base still opening behind it, as its status bar says), and the knowledge base open
(the embedder and LanceDB: asking, the library and live sync work from then on). Cold: a fresh
home folder (no settings, no index, no history, and no embedder export unless --installed), as a
new user's first start. Warm: the same home folder again, as every later start. --installed
gives the cold start the model cache that ``make install`` prepares (this user's real one), i.e.
a first start after installing.

Each start runs the real app offscreen (or on $DISPLAY with --display) with
ALMANAC_QUIT_AFTER_MS=0 and ALMANAC_STARTUP_TRACE=1, which print when the window is shown, when
the knowledge base is open (the window then closes), and each start-up phase.

    .venv/bin/python benchmarks/startup.py --warm 5 [--installed]

Figures are wall-clock seconds on this machine; other processes count, so the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOWN = "almanac: window shown"  # the main window, usable
OPEN = "almanac: knowledge base open"  # the services attached: asking and indexing work
TRACE = "almanac: startup "


def one_start(
    home: Path, display: bool, timeout: float, model_cache: Path | None
) -> dict[str, object]:
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        ALMANAC_QUIT_AFTER_MS="0",
        ALMANAC_STARTUP_TRACE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    for name in ("ALMANAC_DATA_DIR", "ALMANAC_MODEL_CACHE_DIR"):
        env.pop(name, None)
    if model_cache is not None:
        env["ALMANAC_MODEL_CACHE_DIR"] = str(model_cache)
    if not display:
        env["QT_QPA_PLATFORM"] = "offscreen"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "almanac"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    shown: float | None = None
    kb_open: float | None = None
    phases: dict[str, float] = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.perf_counter() - started
        if line.startswith(OPEN) and kb_open is None:
            kb_open = now
        elif line.startswith(SHOWN) and shown is None:
            shown = now
        elif line.startswith(TRACE):
            name, _, value = line[len(TRACE) :].strip().rpartition(" ")
            with contextlib.suppress(ValueError):
                phases[name] = float(value.rstrip("s"))
        if time.perf_counter() - started > timeout:
            proc.kill()
            break
    proc.wait(timeout=timeout)
    return {
        "window_shown_s": shown,
        "kb_open_s": kb_open,
        "exit_s": time.perf_counter() - started,
        "returncode": proc.returncode,
        "phases_s": phases,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=5, help="warm starts after the cold one")
    parser.add_argument("--display", action="store_true", help="use $DISPLAY, not offscreen")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--installed", action="store_true", help="cold start with the installed model cache"
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "out" / "startup.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="almanac-startup-") as tmp:
        home = Path(tmp)
        cache = None
        if args.installed:
            from almanac.app.environment import model_cache_dir

            cache = model_cache_dir()
        cold = one_start(home, args.display, args.timeout, cache)
        warm = [one_start(home, args.display, args.timeout, cache) for _ in range(args.warm)]

    def fmt(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else "-"

    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(f"{'start':<8} {'main window (s)':>16} {'knowledge base (s)':>19}  phases (s)")
    rows = [("cold", cold)] + [(f"warm {i + 1}", w) for i, w in enumerate(warm)]
    for name, r in rows:
        phases = ", ".join(f"{k} {v:.2f}" for k, v in dict(r["phases_s"]).items())  # type: ignore[call-overload]
        shown = fmt(r["window_shown_s"])
        print(f"{name:<8} {shown:>16} {fmt(r['kb_open_s']):>19}  {phases}")
    for key, label in (("window_shown_s", "main window"), ("kb_open_s", "knowledge base open")):
        times = [w[key] for w in warm if isinstance(w[key], float)]
        if times:
            median = statistics.median(times)
            print(f"warm median, {label}: {median:.2f} s (min {min(times):.2f} s)")
    failed = [
        n
        for n, r in rows
        if r["returncode"] != 0 or r["window_shown_s"] is None or r["kb_open_s"] is None
    ]
    if failed:
        print(f"starts without a window or with an error: {', '.join(failed)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cold": cold, "warm": warm}, indent=2), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
