"""The desktop entry point: settings, services, workers, the window; then Qt's event loop."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from almanac.app.history import HistoryStore, default_history_path
from almanac.app.services import (
    APP_NAME,
    build_services,
    default_documents_folder,
    default_kb_dir,
    sample_kb_folder,
)
from almanac.app.settings import SettingsError, SettingsStore, default_settings_path
from almanac.core.retrieval.retrieval import RetrievalConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from PySide6.QtWidgets import QWidget

    from almanac.ui.main_window import MainWindow

log = logging.getLogger(__name__)
# Smoke tests and start-up timing of installed builds (packaging/): close after this many ms.
QUIT_AFTER_ENV = "ALMANAC_QUIT_AFTER_MS"


def run(
    argv: list[str] | None = None, on_window: Callable[[MainWindow], None] | None = None
) -> int:
    """Open the main window and run until it is closed. Returns the process exit code.
    ``on_window`` sees the window before the event loop starts (tests and benchmarks that drive
    the real app in a child process)."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from almanac.ui.main_window import MainWindow
    from almanac.ui.workers import ModelWorker, TaskRunner

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)

    settings_path = default_settings_path()
    first_start = not settings_path.exists()
    settings_store = SettingsStore(settings_path)
    settings = settings_store.load()
    if not settings.documents_folders:
        # First start (or every folder gone): the user's own documents folder first, since drops
        # are copied into the first folder (never into the bundled samples), then the sample
        # documents, so the app has something to answer from before the user adds theirs.
        own = default_documents_folder()
        try:
            own.mkdir(parents=True, exist_ok=True)
            folders: tuple[str, ...] = (str(own), str(sample_kb_folder()))
        except OSError as exc:
            log.warning("could not create %s: %s", own, exc)
            folders = (str(sample_kb_folder()),)
        settings = dataclasses.replace(settings, documents_folders=folders)
        try:
            settings_store.save(settings)
        except (SettingsError, OSError) as exc:
            log.warning("could not save the first-start settings: %s", exc)
    kb_folders = [Path(f).expanduser() for f in settings.documents_folders]

    try:
        services = build_services(
            default_kb_dir(),
            retrieval=RetrievalConfig(relevance_floor=settings.relevance_floor),
        )
        history = HistoryStore(default_history_path())
    except Exception as exc:  # the window can't exist without them: say why, in one dialog
        log.exception("start-up failed")
        QMessageBox.critical(None, APP_NAME, f"Almanac could not start:\n{exc}")
        return 1

    runner = TaskRunner()
    model_worker = ModelWorker()
    window = MainWindow(
        services,
        settings_store,
        history,
        kb_folders,
        runner,
        model_worker,
        first_start=first_start,
    )
    window.show()
    # Reconciles the folders with the index, then follows every change live, on its own thread:
    # the window is usable at once.
    window.start_sync()
    _smoke_test_exit(window)
    if on_window is not None:
        on_window(window)
    try:
        code = int(app.exec())
    finally:
        window.close()  # idempotent; shuts the workers down if exec ended another way
        services.searcher.close()
    # The window waited a bounded time for background work. Whatever is still running (a file
    # mid-parse, a model mid-decode) would keep the process alive, or abort it when its QThread
    # is destroyed; and the interpreter's own teardown of a heap holding the embedder and the
    # store took 13 s on a busy 2-core laptop after a clean close. Everything the user has is
    # on disk by now (history closed, settings saved, index writes committed; an interrupted
    # indexing is finished by the next start's reconciliation), so when this function owns the
    # application it ends the process here.
    writer_done = services.ingestor.writer.close(timeout=0.5)
    if not writer_done or model_worker.is_running() or runner.active_count():
        log.warning("background work still running at exit: ending the process")
    if existing is None or not writer_done or model_worker.is_running():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _smoke_test_exit(window: QWidget) -> None:
    """With $ALMANAC_QUIT_AFTER_MS set: say on stderr when the event loop first runs (the window
    is up), then close the window after that many milliseconds, which ends the app."""
    raw = os.environ.get(QUIT_AFTER_ENV, "").strip()
    if not raw:
        return
    try:
        delay = max(0, int(raw))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of milliseconds", QUIT_AFTER_ENV, raw)
        return
    from PySide6.QtCore import QTimer

    QTimer.singleShot(0, lambda: print("almanac: window shown", file=sys.stderr, flush=True))
    QTimer.singleShot(delay, window.close)
