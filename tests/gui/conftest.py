"""GUI test hygiene (after napari): a test that leaves a QThread running, a thread-pool task or an
active QTimer behind, a live top-level widget, or a worker still busy, fails.

Leaks like these make later tests flaky and hide real shutdown bugs (a model thread that never
quits keeps the app from exiting), so they are errors of the test that caused them.
"""

from __future__ import annotations

import weakref

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QThread, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication
from shiboken6 import isValid

from almanac.ui.workers import ModelWorker, TaskRunner

# A pool thread is still "active" for a moment after the callback it delivered has run.
_POOL_GRACE_MS = 500


def _alive(obj: object) -> bool:
    return obj is not None and isValid(obj)


@pytest.fixture(autouse=True)
def no_qt_leaks(qapp: QApplication, monkeypatch: pytest.MonkeyPatch):
    threads: list[weakref.ref[QThread]] = []
    pools: list[weakref.ref[QThreadPool]] = []
    timers: list[weakref.ref[QTimer]] = []
    runners: list[weakref.ref[TaskRunner]] = []
    model_workers: list[weakref.ref[ModelWorker]] = []

    def recording(cls: type, name: str, into: list) -> None:
        original = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            into.append(weakref.ref(self))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    recording(QThread, "start", threads)
    recording(QThreadPool, "start", pools)
    recording(QThreadPool, "tryStart", pools)
    recording(QTimer, "start", timers)
    recording(TaskRunner, "__init__", runners)
    recording(ModelWorker, "__init__", model_workers)

    before = set(QApplication.topLevelWidgets())
    yield

    # qtbot has closed and deleteLater()'d its widgets; deferred deletes need an explicit flush.
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    problems: list[str] = []
    # Python-owned widgets die with the test's locals, so anything still alive here is owned by
    # Qt (or a reference cycle) and would live for the rest of the session.
    leaked = [w for w in QApplication.topLevelWidgets() if w not in before and _alive(w)]
    if leaked:
        problems.append(f"top-level widgets left open: {leaked}")
    for ref in threads:
        thread = ref()
        if _alive(thread) and thread.isRunning():
            problems.append(f"QThread still running: {thread.objectName() or thread!r}")
    for ref in pools:
        pool = ref()
        if _alive(pool) and not pool.waitForDone(_POOL_GRACE_MS):
            problems.append(f"QThreadPool still has {pool.activeThreadCount()} active task(s)")
    for ref in timers:
        timer = ref()
        if _alive(timer) and timer.isActive():
            problems.append(f"QTimer still active: {timer.objectName() or timer!r}")
    for ref in runners:
        runner = ref()
        if _alive(runner) and runner.active_count():
            problems.append(f"TaskRunner has {runner.active_count()} unfinished task(s)")
    for ref in model_workers:
        worker = ref()
        if _alive(worker) and worker.is_running():
            problems.append("ModelWorker thread still running (call shutdown())")
    if problems:
        pytest.fail("test leaked Qt resources:\n  " + "\n  ".join(problems), pytrace=False)
