"""The desktop entry point: settings, services, workers, the window; then Qt's event loop.

A start window appears first (Qt and ui.start_window only); the knowledge base and the embedder
open on a thread behind it, then the main window takes its place. The core's imports (numpy,
LanceDB, onnxruntime) happen after the start window is on screen, not before.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from PySide6.QtWidgets import QApplication, QWidget

    from almanac.app.services import Services
    from almanac.ui.main_window import MainWindow

log = logging.getLogger(__name__)
# Smoke tests and start-up timing of installed builds (packaging/): close after this many ms.
QUIT_AFTER_ENV = "ALMANAC_QUIT_AFTER_MS"
# benchmarks/startup.py: each start-up phase's seconds on stderr.
TRACE_ENV = "ALMANAC_STARTUP_TRACE"
_STARTED = time.perf_counter()


def _trace(phase: str) -> None:
    if os.environ.get(TRACE_ENV):
        print(f"almanac: startup {phase} {time.perf_counter() - _STARTED:.3f}s", file=sys.stderr)


def run(
    argv: list[str] | None = None, on_window: Callable[[MainWindow], None] | None = None
) -> int:
    """Open the main window and run until it is closed. Returns the process exit code.
    ``on_window`` sees the window before the event loop starts (tests and benchmarks that drive
    the real app in a child process)."""
    _trace("python-and-cli")
    from PySide6.QtWidgets import QApplication, QMessageBox

    from almanac.ui.start_window import FIRST_START, StartWindow

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    app.setApplicationName("Almanac")
    app.setOrganizationName("Almanac")
    start_window = StartWindow(first_start=False)
    start_window.show()
    app.processEvents()  # painted now, before any of the slow imports below
    _trace("start-window")
    if os.environ.get(QUIT_AFTER_ENV):
        print("almanac: start window shown", file=sys.stderr, flush=True)

    from almanac.app.bootstrap import bootstrap
    from almanac.app.history import HistoryStore, default_history_path
    from almanac.app.services import APP_NAME, default_documents_folder, sample_kb_folder
    from almanac.app.settings import SettingsError
    from almanac.ui.main_window import MainWindow
    from almanac.ui.window_state import WindowState
    from almanac.ui.workers import ModelWorker, TaskRunner

    _trace("imports")

    # The offline switches, the environment and the user's settings: read once, as the CLI does.
    boot = bootstrap()
    settings_store, settings, first_start = boot.settings_store, boot.settings, boot.first_start
    if first_start:
        start_window.say(FIRST_START)
    # Where the main window will be: the start window stands in its place meanwhile.
    WindowState(settings_store.path.with_name("window.ini")).restore_geometry(start_window)
    if not settings.documents_folders:
        # First start (or every folder gone): the user's own documents folder first, since drops
        # are copied into the first folder (never into the bundled samples), then the sample
        # documents, so the app has something to answer from before the user adds theirs.
        own = default_documents_folder(boot.environment)
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
    _trace("settings")

    try:
        services = _open_services(app, start_window, boot.kb_dir, settings.relevance_floor)
        _trace("services")
        history = HistoryStore(default_history_path())
    except Exception as exc:  # the window can't exist without them: say why, in one dialog
        log.exception("start-up failed")
        start_window.hide()
        QMessageBox.critical(None, APP_NAME, f"Almanac could not start:\n{exc}")
        return 1
    if start_window.closed_by_user:
        return 0

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
        environment=boot.environment,
    )
    _trace("window-built")
    window.show()
    start_window.close()
    start_window.closed_by_user = False
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


def _open_services(
    app: QApplication, start_window: QWidget, kb_dir: Path, relevance_floor: float
) -> Services:
    """build_services on a thread while the start window stays painted and movable."""
    from almanac.app.services import build_services
    from almanac.core.retrieval.retrieval import RetrievalConfig

    result: list[object] = []
    done = threading.Event()

    def build() -> None:
        try:
            result.append(
                build_services(kb_dir, retrieval=RetrievalConfig(relevance_floor=relevance_floor))
            )
        except BaseException as exc:  # handed to the GUI thread, raised there
            result.append(exc)
        finally:
            done.set()

    threading.Thread(target=build, name="almanac-start", daemon=True).start()
    while not done.wait(0.03):
        app.processEvents()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]  # type: ignore[return-value]


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

    def shown() -> None:
        _trace("shown")
        print("almanac: window shown", file=sys.stderr, flush=True)

    QTimer.singleShot(0, shown)
    QTimer.singleShot(delay, window.close)
