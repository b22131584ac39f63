"""A child process running the real desktop app (almanac.ui.app.run) on a temporary profile, which
closes its window at a chosen moment and prints what happened, in order, one event a line:
``event <name> <time.monotonic()>``. Used by test_close.py (order and exit only) and by
benchmarks/close_latency.py (the times).

    python close_probe.py reconcile PROFILE   # close during the first indexing of the documents
    python close_probe.py generation PROFILE MODEL   # close while the model answers
                                                     # (MODEL: a GGUF, or "default")
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

QUESTION = "How long is the password reset link valid?"


def mark(name: str) -> None:
    print(f"event {name} {time.monotonic():.6f}", flush=True)


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
        elif scenario == "generation":
            worker = window.model_worker

            def loaded(_info: object) -> None:
                mark("model-loaded")
                window.ask(QUESTION)
                mark("asked")
                # The model thread is now evaluating the prompt or generating: a first streamed
                # piece would come too late to close on (answers stream a sentence at a time).
                close(window)

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
