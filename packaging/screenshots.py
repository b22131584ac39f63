"""Render the main window's states to PNGs (offscreen, QWidget.grab) for docs and review.

    python packaging/screenshots.py OUTDIR [--model GGUF]

States: first start over the sample KB, a sources-only answer (banner), the library, the settings
dialog, and (with a model: --model, else the tiny test model when it has been built) an answered
question with citations and the source viewer open on a PDF page. Everything happens in a temp
folder (index, settings, history); nothing of the user's is read or written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
QUESTION = "How long is the password reset link valid?"
SIZE = (1280, 800)


def _wait(until: Callable[[], bool], timeout: float = 120.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not reach the expected state")
        QApplication.processEvents()
        time.sleep(0.02)


def _settle(seconds: float = 0.3) -> None:
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def _default_model() -> Path | None:
    cache = REPO / "build" / "test-models"
    found = sorted(cache.glob("tiny-chat-*.gguf")) if cache.is_dir() else []
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--model", type=Path, help="GGUF for the answered state")
    args = parser.parse_args(argv)
    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    model: Path | None = args.model or _default_model()

    from PySide6.QtWidgets import QApplication

    from almanac.app.history import HistoryStore
    from almanac.app.services import build_services, sample_kb_folder
    from almanac.app.settings import Settings, SettingsStore
    from almanac.core.records import Answer
    from almanac.ui.main_window import MainWindow
    from almanac.ui.workers import ModelWorker, TaskRunner

    app = QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    saved: list[str] = []

    def grab(widget: object, name: str) -> None:
        from PySide6.QtWidgets import QWidget

        assert isinstance(widget, QWidget)
        _settle()
        path = out / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        saved.append(str(path))

    with tempfile.TemporaryDirectory(prefix="almanac-shots-") as tmp:
        root = Path(tmp)
        sample = sample_kb_folder()
        services = build_services(root / "kb")
        store = SettingsStore(root / "settings.json")
        store.save(Settings(documents_folders=(str(sample),)))

        def window(first_start: bool) -> MainWindow:
            w = MainWindow(
                services,
                store,
                HistoryStore(root / "history.sqlite3"),
                [sample],
                TaskRunner(),
                ModelWorker(),
                first_start=first_start,
            )
            w.resize(*SIZE)
            w.show()
            return w

        # 1. First start: the sample KB indexed, the hint shown, no model.
        w = window(first_start=True)
        w.index_folders()
        _wait(lambda: not w.is_indexing())
        _wait(lambda: w.library.model.rowCount() > 0)
        grab(w, "01-first-start")

        # 2. Sources-only answer with the banner.
        answers: list[Answer] = []
        w.model_worker.answered.connect(answers.append)
        w.ask(QUESTION)
        _wait(lambda: bool(answers) and not w._generating)
        grab(w, "02-sources-only")

        # 3. The library.
        w.show_library()
        _wait(lambda: w.library.model.rowCount() > 0)
        grab(w, "03-library")

        # 4. Settings.
        dialog = w.settings_dialog()
        dialog.resize(640, 720)
        dialog.show()
        grab(dialog, "04-settings")
        dialog.close()
        w.close()

        # 5. A model's answer with citations, the viewer on a PDF page.
        if model is not None and model.is_file():
            store.save(
                Settings(
                    documents_folders=(str(sample),),
                    model_path=str(model),
                    temperature=0.0,
                    max_tokens=120,
                )
            )
            w = window(first_start=False)
            _wait(lambda: w.model_status.text().startswith("Model:"))
            answers.clear()
            w.model_worker.answered.connect(answers.append)
            w.new_chat()
            w.ask(QUESTION)
            _wait(lambda: bool(answers) and not w._generating)
            answer = answers[-1]
            cited = [*answer.citations, *answer.also_retrieved]
            pdf = next((c for c in cited if c.page is not None), cited[0] if cited else None)
            if pdf is not None:
                w.show_citation(pdf)
            grab(w, "05-answer-with-source")
            w.close()
        else:
            print("no model: skipped the answered state (build it with make test-models)")
        services.searcher.close()

    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
