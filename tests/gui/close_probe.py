"""A child process running the real desktop app (almanac.ui.app.run) on a temporary profile, which
closes its window at a chosen moment and prints what happened, in order, one event a line:
``event <name> <time.monotonic()>``. Used by test_close.py (order and exit only) and by
benchmarks/close_latency.py (the times).

    python close_probe.py reconcile PROFILE   # close during the first indexing of the documents
    python close_probe.py generation PROFILE MODEL   # close while the model answers
    python close_probe.py generation-gated PROFILE MODEL   # close after the first token, the
                                                     # engine held until the window is closed
                                                     # (MODEL: a GGUF, or "default")
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from pathlib import Path

QUESTION = "How long is the password reset link valid?"


def mark(name: str) -> None:
    print(f"event {name} {time.monotonic():.6f}", flush=True)


gate = threading.Event()


def _gate_generation(generating: threading.Event) -> None:
    """Hold the real engine after its first token until the window has closed, so the close is
    certainly during generation however fast the model is (the tiny test model answers in ms)."""
    from almanac.core.llm.llama_engine import LlamaCppEngine

    real = LlamaCppEngine.stream_chat

    def gated(self, messages, config, stop=None):  # type: ignore[no-untyped-def]
        for index, piece in enumerate(real(self, messages, config, stop)):
            if index == 0:
                mark("generating")
                generating.set()
                gate.wait(120)
            yield piece

    LlamaCppEngine.stream_chat = gated  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    scenario, profile = argv[0], Path(argv[1])
    # A GGUF path, or "default" for Almanac's own default model (base + adapter).
    model = Path(argv[2]) if len(argv) > 2 and argv[2] != "default" else None
    os.environ["ALMANAC_KB"] = str(profile / "kb")
    os.environ["ALMANAC_CONFIG_DIR"] = str(profile / "config")
    os.environ["ALMANAC_DATA_DIR"] = str(profile / "data")
    os.environ["ALMANAC_DOCUMENTS_DIR"] = str(profile / "docs")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QTimer

    from almanac.app.settings import Settings, SettingsStore, default_settings_path
    from almanac.ui.app import run
    from almanac.ui.main_window import MainWindow

    store = SettingsStore(default_settings_path())
    settings = dataclasses.replace(
        Settings(),
        documents_folders=(str(profile / "docs"),),
        model_path=str(model) if model else None,
        temperature=0.0,
        max_tokens=512,
    )
    store.save(settings)

    def close(window: MainWindow) -> None:
        mark("closing")
        window.close()
        mark("closed" if not window.isVisible() else "still-visible")

    def on_window(window: MainWindow) -> None:
        mark("window-shown")
        if scenario == "reconcile":
            poll = QTimer(window)
            poll.setInterval(10)

            def check() -> None:
                if "indexing" in window.sync_status.text():
                    poll.stop()
                    mark("indexing")
                    close(window)

            poll.timeout.connect(check)
            poll.start()
        elif scenario in ("generation", "generation-gated"):
            worker = window.model_worker
            generating = threading.Event()

            def loaded(_info: object) -> None:
                mark("model-loaded")
                ready.start()

            ready = QTimer(window)
            ready.setInterval(100)

            def ask_once_indexed() -> None:
                # Asked before the start-up sync indexed the document, it would find nothing
                # and answer "not found" without the model.
                if not window.services.store.documents():
                    return
                ready.stop()
                window.ask(QUESTION)
                mark("asked")
                if scenario == "generation":
                    # The model thread is now evaluating the prompt or generating (answers
                    # stream a sentence at a time: a first streamed piece could come too late).
                    close(window)
                else:
                    poll.start()

            poll = QTimer(window)
            poll.setInterval(10)

            def check() -> None:
                if generating.is_set():
                    poll.stop()
                    close(window)
                    gate.set()  # the model thread goes on, and must find its stop flag set

            poll.timeout.connect(check)
            ready.timeout.connect(ask_once_indexed)
            if scenario == "generation-gated":
                _gate_generation(generating)
            worker.loaded.connect(loaded)
            worker.answered.connect(
                lambda a: mark("answered-stopped" if a.stopped else "answered-complete")
            )
        else:
            raise SystemExit(f"unknown scenario {scenario}")

    code = run([sys.argv[0]], on_window=on_window)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
