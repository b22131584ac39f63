"""Render the main window's states to PNGs (offscreen, QWidget.grab) for docs and review.

    python packaging/screenshots.py OUTDIR [--model GGUF]

States, at 1280x800 and 1920x1080: first start over the sample KB, answers with source cards, the
source pane on a highlighted PDF page, the library, the settings dialog, the dark theme; and (with
a model: --model, else the tiny test model when it has been built) a model's answer. Everything
happens in a temp folder (index, settings, history); nothing of the user's is read or written.
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
SECOND_QUESTION = "Which network ports does LAN sync use?"
SIZES = ((1280, 800), (1920, 1080))


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


DEFAULT = Path("<default model>")


def _installed_default() -> Path | None:
    """Almanac's own default model, when this install has it (chosen with no model_path)."""
    from almanac.app.services import choose_model

    return DEFAULT if choose_model(None).path is not None else None


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
    model: Path | None = args.model or _installed_default() or _default_model()

    from PySide6.QtWidgets import QApplication

    from almanac.app.history import HistoryStore
    from almanac.app.services import build_services, sample_kb_folder
    from almanac.app.settings import Settings, SettingsStore
    from almanac.core.records import Answer
    from almanac.ui.main_window import MainWindow
    from almanac.ui.theme import apply_theme
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
        # Indexed once: every size shows the same knowledge base.
        services.ingestor.ingest([sample])

        def window(first_start: bool, size: tuple[int, int], tag: str) -> MainWindow:
            # A history and layout file per window: each starts as a new user's would.
            store_here = SettingsStore(root / tag / "settings.json")
            store_here.path.parent.mkdir(parents=True, exist_ok=True)
            store_here.save(store.load())
            w = MainWindow(
                services,
                store_here,
                HistoryStore(root / tag / "history.sqlite3"),
                [sample],
                TaskRunner(),
                ModelWorker(),
                first_start=first_start,
            )
            w.resize(*size)
            w.show()
            _wait(lambda: w.library.model.rowCount() > 0)
            return w

        def shoot(size: tuple[int, int]) -> None:
            suffix = f"{size[0]}x{size[1]}"
            apply_theme("light")

            # 1. First start: the sample KB indexed, the hint shown, no model.
            w = window(True, size, f"first-{suffix}")
            grab(w, f"01-first-start-{suffix}")

            # 2. An answer (the best passages, no model): turns, chips, source cards.
            answers: list[Answer] = []
            w.model_worker.answered.connect(answers.append)
            w.ask(QUESTION)
            _wait(lambda: bool(answers) and not w._generating)
            w.ask(SECOND_QUESTION)
            _wait(lambda: len(answers) == 2 and not w._generating)
            grab(w, f"02-answer-with-sources-{suffix}")

            # 3. The source pane on the last answer's first PDF passage, highlight in view.
            cited = [c for c in answers[-1].citations if c.page is not None]
            if cited:
                w.show_citation(cited[0])
            grab(w, f"03-source-pane-pdf-{suffix}")

            # 4. Dark theme: the same window re-rendered.
            apply_theme("dark")
            grab(w, f"06-dark-theme-{suffix}")
            apply_theme("light")

            # 5. The library.
            w.close_source()
            w.show_library()
            grab(w, f"04-library-{suffix}")

            # 6. Settings.
            dialog = w.settings_dialog()
            dialog.resize(640, 720)
            dialog.show()
            grab(dialog, f"05-settings-{suffix}")
            dialog.close()
            w.close()

        # The main states show passages (no model): the same pictures on every machine, in
        # seconds. The model's answer is its own state below.
        os.environ["ALMANAC_NO_DEFAULT_MODEL"] = "1"
        for size in SIZES:
            shoot(size)
        os.environ.pop("ALMANAC_NO_DEFAULT_MODEL", None)

        # 7. A model's answer with citations, 1280x800 only: --model, else Almanac's default
        # model when it is installed, else the tiny test model.
        if model is not None and (model == DEFAULT or model.is_file()):
            store.save(
                Settings(
                    documents_folders=(str(sample),),
                    model_path=None if model == DEFAULT else str(model),
                    temperature=0.0,
                    max_tokens=160,
                )
            )
            w = window(False, SIZES[0], "model")
            _wait(lambda: w.model_status.text().startswith("Model:"))
            answers = []
            w.model_worker.answered.connect(answers.append)
            w.ask(QUESTION)
            _wait(lambda: bool(answers) and not w._generating)
            grab(w, "07-model-answer-1280x800")
            w.close()
        else:
            print("no model: skipped the model's answer (build it with make test-models)")
        services.searcher.close()

    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
