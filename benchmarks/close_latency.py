"""How long the app takes to let go: close to process exit, and Stop before the first token.

1. close during the first indexing of a folder of N files (default 600): the real app in a child
   process (tests/gui/close_probe.py) closes its window as soon as the sync reports indexing;
   reported: close -> window hidden, close -> process gone, and how many files were indexed (the
   rest is left to the next start's reconciliation).
2. close during generation: the same, closing right after asking (the model thread evaluates the
   prompt or generates; answers stream a sentence at a time, too late to close on).
3. Stop before the first token: the default model (SmolLM2-135M + adapter) on a prompt the size
   of a 5-source answer; the stop flag is set once prompt evaluation is under way; reported: stop
   -> generator ended, next to the time the prompt takes in full (what Stop used to wait for).

    .venv/bin/python benchmarks/close_latency.py [--files 600] [--runs 3] [--stop-runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "gui" / "close_probe.py"
sys.path.insert(0, str(REPO / "desktop"))


def _probe(scenario: str, profile: Path, *extra: str) -> tuple[dict[str, float], float]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "desktop"), QT_QPA_PLATFORM="offscreen")
    if extra and extra[0] == "default":
        env.pop("ALMANAC_NO_DEFAULT_MODEL", None)
    child = subprocess.Popen(
        [sys.executable, str(PROBE), scenario, str(profile), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    events: dict[str, float] = {}
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("event "):
            _, name, when = line.split()
            events.setdefault(name, float(when))
    child.wait(600)
    gone = time.monotonic()  # the pipe closed and the process was reaped
    if child.returncode != 0:
        raise SystemExit(f"probe {scenario} failed with exit code {child.returncode}")
    return events, gone


def close_during_indexing(files: int, runs: int) -> None:
    print(f"\n== close during the first indexing of {files} files")
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            profile = Path(tmp)
            docs = profile / "docs"
            docs.mkdir()
            for i in range(files):
                (docs / f"note-{i:03d}.md").write_text(
                    f"# Note {i}\n\n" + f"Part {i} sits on shelf {i % 40} in aisle {i % 7}. " * 30,
                    encoding="utf-8",
                )
            events, gone = _probe("reconcile", profile)
            from almanac.core.store.store import Store

            indexed = len(Store.open_existing(profile / "kb").documents())
        hidden = events["closed"] - events["closing"]
        print(
            f"run {run + 1}: close -> window hidden {hidden:.3f} s, close -> process gone "
            f"{gone - events['closing']:.3f} s; {indexed}/{files} indexed at close"
        )


def close_during_generation(model: str, runs: int) -> None:
    print(f"\n== close while the model answers ({model})")
    faq = REPO / "resources" / "sample-kb" / "faq.md"
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            profile = Path(tmp)
            (profile / "docs").mkdir()
            shutil.copy(faq, profile / "docs" / "faq.md")
            events, gone = _probe("generation", profile, model)
        outcome = "completed" if "answered-complete" in events else "stopped"
        print(
            f"run {run + 1}: close -> window hidden {events['closed'] - events['closing']:.3f} s, "
            f"close -> process gone {gone - events['closing']:.3f} s (answer {outcome})"
        )


def stop_before_first_token(runs: int) -> None:
    from almanac.app.environment import model_cache_dir
    from almanac.core.llm.base import ChatMessage, GenerationConfig
    from almanac.core.llm.default_model import resolve_default_model
    from almanac.core.llm.llama_engine import LlamaCppEngine

    default = resolve_default_model(cache_dir=model_cache_dir())
    engine = LlamaCppEngine(
        default.prepare(model_cache_dir()).path,
        lora_path=default.adapter,
        chat_format=default.chat_format,
    )
    faq = (REPO / "resources" / "sample-kb" / "faq.md").read_text(encoding="utf-8")
    config = GenerationConfig(max_tokens=64, temperature=0.0)
    print(f"\n== Stop before the first token ({engine.info.model} + adapter)")
    full: list[float] = []
    stops: list[float] = []
    for run in range(runs):
        # A different prompt each run: nothing of it is in llama.cpp's cache.
        messages = [
            ChatMessage("system", f"Run {run}. Answer from the sources; cite them as [n]."),
            ChatMessage("user", f"Sources:\n{faq[:6000]}\n\nQuestion: how do I reset it?"),
        ]
        prompt_tokens = engine.count_tokens(messages)
        engine._llm.reset()
        started = time.monotonic()
        first = next(iter(engine.stream_chat(messages, config)), None)
        full.append(time.monotonic() - started)
        assert first is not None

        engine._llm.reset()
        stop = threading.Event()
        evaluating = threading.Event()
        real_eval = engine._llm.eval

        def eval_and_tell(tokens: object, real=real_eval, flag=evaluating) -> None:  # type: ignore[no-untyped-def]
            flag.set()
            real(tokens)

        engine._llm.eval = eval_and_tell
        ended = threading.Event()
        pieces: list[str] = []

        def generate(msgs=messages, out=pieces, done=ended, flag=stop) -> None:  # type: ignore[no-untyped-def]
            out.extend(engine.stream_chat(msgs, config, flag))
            done.set()

        worker = threading.Thread(target=generate)
        worker.start()
        evaluating.wait(120)
        stop.set()
        set_at = time.monotonic()
        ended.wait(120)
        stops.append(time.monotonic() - set_at)
        worker.join()
        engine._llm.eval = real_eval
        print(
            f"run {run + 1}: prompt {prompt_tokens} tokens; first token without Stop "
            f"{full[-1]:.2f} s; Stop -> ended {stops[-1]:.3f} s ({len(pieces)} pieces)"
        )
    print(
        f"Stop -> ended: median {statistics.median(stops):.3f} s, max {max(stops):.3f} s; "
        f"first token without Stop: median {statistics.median(full):.2f} s"
    )
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stop-runs", type=int, default=5)
    parser.add_argument("--model", default="default", help="GGUF for the generation run")
    parser.add_argument(
        "--only", choices=("indexing", "generation", "stop"), default=None, help="one part"
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    if args.only in (None, "indexing"):
        close_during_indexing(args.files, args.runs)
    if args.only in (None, "generation"):
        close_during_generation(args.model, args.runs)
    if args.only in (None, "stop"):
        stop_before_first_token(args.stop_runs)


if __name__ == "__main__":
    main()
