"""The desktop entry point: settings, history, the main window on screen; then Qt's event loop,
while the knowledge base and the embedder open on a thread behind the window.

The window is usable at once (conversations, the question box): its module imports Qt, SQLite
and the app layer, not numpy, LanceDB or onnxruntime, which load on the thread that opens the
services. The window says the knowledge base is opening and gets the services when they are
ready (``MainWindow.attach_services``); closing it before then abandons the opening.
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

    from almanac.app.services import Services
    from almanac.ui.main_window import MainWindow

log = logging.getLogger(__name__)
# Smoke tests and start-up timing of installed builds (packaging/): close this many ms after the
# knowledge base is open (the start-up complete), which ends the app.
QUIT_AFTER_ENV = "ALMANAC_QUIT_AFTER_MS"
# benchmarks/startup.py: each start-up phase's seconds on stderr.
TRACE_ENV = "ALMANAC_STARTUP_TRACE"
_STARTED = time.perf_counter()
# How often the GUI thread looks whether the services are open (ms).
_POLL_MS = 20


def _trace(phase: str) -> None:
    if os.environ.get(TRACE_ENV):
        print(f"almanac: startup {phase} {time.perf_counter() - _STARTED:.3f}s", file=sys.stderr)


def run(
    argv: list[str] | None = None, on_window: Callable[[MainWindow], None] | None = None
) -> int:
    """Open the main window and run until it is closed. Returns the process exit code.
    ``on_window`` sees the window before the event loop starts, before its services are open
    (tests and benchmarks that drive the real app in a child process)."""
    _trace("python-and-cli")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from almanac.app.bootstrap import bootstrap
    from almanac.app.history import HistoryStore, default_history_path
    from almanac.app.services import APP_NAME, default_documents_folder, sample_kb_folder
    from almanac.app.settings import SettingsError
    from almanac.ui.main_window import MainWindow
    from almanac.ui.workers import ModelWorker, TaskRunner

    _trace("imports")
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or sys.argv[:1])
    app.setApplicationName("Almanac")
    app.setOrganizationName("Almanac")

    # The offline switches, the environment and the user's settings: read once, as the CLI does.
    boot = bootstrap()
    settings_store, settings, first_start = boot.settings_store, boot.settings, boot.first_start
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
        history = HistoryStore(default_history_path())
    except Exception as exc:  # the window can't exist without it: say why, in one dialog
        log.exception("start-up failed")
        QMessageBox.critical(None, APP_NAME, f"Almanac could not start:\n{exc}")
        return 1

    runner = TaskRunner()
    model_worker = ModelWorker()
    window = MainWindow(
        None,
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
    # Reconciles the folders with the index, then follows every change live, on its own thread,
    # as soon as the services are open.
    window.start_sync()
    quit_after = _smoke_test_exit()
    if on_window is not None:
        on_window(window)
    app.processEvents()  # painted now, before the thread below competes for the interpreter

    opening = _ServicesOpening(boot.kb_dir, settings.relevance_floor)

    def check() -> None:
        if not opening.done.is_set():
            return
        poll.stop()
        if not window.ready:  # a closed window takes neither (and the services close below)
            if opening.error is not None:
                log.error("could not open the knowledge base", exc_info=opening.error)
                window.services_failed(str(opening.error) or type(opening.error).__name__)
            elif opening.services is not None:
                window.attach_services(opening.services)
                _trace("services")
        if quit_after is not None:
            said = "knowledge base open" if window.ready else "knowledge base not open"
            print(f"almanac: {said}", file=sys.stderr, flush=True)
            QTimer.singleShot(quit_after, window.close)

    poll = QTimer(window)
    poll.setInterval(_POLL_MS)
    poll.timeout.connect(check)
    poll.start()
    try:
        code = int(app.exec())
    finally:
        poll.stop()
        window.close()  # idempotent; shuts the workers down if exec ended another way
        services = opening.services if opening.done.is_set() else None
        if services is not None:
            services.searcher.close()
    # The window waited a bounded time for background work. Whatever is still running (a file
    # mid-parse, a model mid-decode, the services still opening) would keep the process alive,
    # or abort it when its QThread is destroyed; and the interpreter's own teardown of a heap
    # holding the embedder and the store took 13 s on a busy 2-core laptop after a clean close.
    # Everything the user has is on disk by now (history closed, settings saved, index writes
    # committed; an interrupted indexing is finished by the next start's reconciliation), so
    # when this function owns the application it ends the process here.
    writer_done = services.ingestor.writer.close(timeout=0.5) if services is not None else True
    still_opening = not opening.done.is_set()
    if not writer_done or model_worker.is_running() or runner.active_count() or still_opening:
        log.warning("background work still running at exit: ending the process")
    if existing is None or not writer_done or model_worker.is_running() or still_opening:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


class _ServicesOpening:
    """build_services on a thread of its own, started at once; the GUI thread polls ``done``.
    Closing the window before it ends abandons it (the process ends without waiting)."""

    def __init__(self, kb_dir: Path, relevance_floor: float) -> None:
        self.services: Services | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._kb_dir = kb_dir
        self._relevance_floor = relevance_floor
        threading.Thread(target=self._build, name="almanac-start", daemon=True).start()

    def _build(self) -> None:
        try:
            from almanac.app.services import build_services
            from almanac.core.retrieval.retrieval import RetrievalConfig

            retrieval = RetrievalConfig(relevance_floor=self._relevance_floor)
            self.services = build_services(self._kb_dir, retrieval=retrieval)
        except BaseException as exc:  # handed to the GUI thread, shown by the window
            self.error = exc
        finally:
            self.done.set()


def _smoke_test_exit() -> int | None:
    """With $ALMANAC_QUIT_AFTER_MS set: say on stderr when the event loop first runs (the window
    is up and usable); returns the milliseconds after which the window closes once the
    knowledge base is open (run's poll says that on stderr too), which ends the app."""
    raw = os.environ.get(QUIT_AFTER_ENV, "").strip()
    if not raw:
        return None
    try:
        delay = max(0, int(raw))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of milliseconds", QUIT_AFTER_ENV, raw)
        return None
    from PySide6.QtCore import QTimer

    def shown() -> None:
        _trace("shown")
        print("almanac: window shown", file=sys.stderr, flush=True)

    QTimer.singleShot(0, shown)
    return delay
