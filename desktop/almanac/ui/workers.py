"""Background work for the GUI: the one API every long operation goes through.

``TaskRunner`` runs short-lived jobs (ingest, search, file reads) on a ``QThreadPool``;
``ModelWorker`` owns the chat engine on one dedicated ``QThread`` because llama.cpp contexts are
not thread-safe. Both follow the same rules (DESIGN.md, "Long work never runs on the GUI thread"):

- work runs on a worker thread and never touches widgets;
- results, errors and progress come back to the GUI thread by *queued* signals, so callbacks may
  update widgets freely;
- cancellation is cooperative: a ``threading.Event`` the work checks;
- an exception reaches the user as a one-line message and the log keeps its traceback.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot

from almanac.core.documents.errors import DocumentError
from almanac.core.llm.base import ChatMessage, Engine, EngineInfo, ModelError
from almanac.core.records import Answer, SearchFilters

if TYPE_CHECKING:
    from almanac.core.answering.answer import AnswerService

__all__ = [
    "Answerer",
    "ModelWorker",
    "ProgressFn",
    "TaskCancelled",
    "TaskHandle",
    "TaskRunner",
    "error_message",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressFn = Callable[[object], None]

# Errors whose message is already written for the user; anything else is a bug, so its type name
# is kept in the one-line message to make reports useful.
_USER_FACING: tuple[type[BaseException], ...] = (ModelError, DocumentError, OSError, ValueError)


class TaskCancelled(Exception):
    """Raised by work that noticed its cancel event; treated as cancellation, never as an error."""


def error_message(exc: BaseException) -> str:
    """One line a user can read: the message of an expected error, ``Type: message`` otherwise."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if isinstance(exc, _USER_FACING) and first:
        return first
    name = type(exc).__name__
    return f"{name}: {first}" if first else name


# --- TaskRunner --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Callbacks:
    on_success: Callable[[Any], None] | None
    on_error: Callable[[str], None] | None
    on_progress: Callable[[object], None] | None


class TaskHandle:
    """A submitted task: lets its owner cancel it and ask whether it is over."""

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id
        self._cancel = threading.Event()
        self._done = False  # only touched on the GUI thread
        # Progress is coalesced: the worker overwrites the latest value and posts at most one
        # delivery at a time, so a chatty ingest can't flood the GUI event queue.
        self._progress_lock = threading.Lock()
        self._progress_value: object = None
        self._progress_posted = False

    def cancel(self) -> None:
        """Ask the work to stop (it sees its cancel event set). Safe from any thread."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        """True once the task's final callback has run on the GUI thread (or was discarded)."""
        return self._done

    def __repr__(self) -> str:
        return f"TaskHandle({self.task_id}, cancelled={self.cancelled}, done={self.done})"


class _Runnable(QRunnable):
    def __init__(self, run: Callable[[], None]) -> None:
        super().__init__()
        self._run = run

    def run(self) -> None:
        self._run()


# Outcome kinds carried by the private ``_finished`` signal.
_SUCCESS, _ERROR, _CANCELLED = "success", "error", "cancelled"


class TaskRunner(QObject):
    """Runs callables on a QThreadPool; results come back to the GUI thread by queued signals.

    Create it on the GUI thread (callbacks run on the thread the runner lives in). Call
    ``shutdown`` before the application quits: it cancels everything and waits for the pool.
    """

    # Emitted from worker threads; the receiving slots live on this object (GUI thread), and the
    # explicit QueuedConnection makes the hop even if someone emits from the GUI thread itself.
    _progressed = Signal(int)
    _finished = Signal(int, str, object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        # A private pool, not QThreadPool.globalInstance(): shutdown must wait for *our* work
        # only, and other libraries' tasks must not eat our threads.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._ids = itertools.count(1)
        self._tasks: dict[int, tuple[TaskHandle, _Callbacks]] = {}
        self._closed = False
        self._progressed.connect(self._deliver_progress, Qt.ConnectionType.QueuedConnection)
        self._finished.connect(self._deliver_finished, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        fn: Callable[[ProgressFn, threading.Event], T],
        *,
        on_success: Callable[[T], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[object], None] | None = None,
    ) -> TaskHandle:
        """Run ``fn(progress, cancel)`` on a worker thread.

        ``progress(obj)`` may be called from the work; ``on_progress`` gets (coalesced) values
        on the GUI thread. ``on_success(result)`` or ``on_error(message)`` runs on the GUI
        thread when the work ends. A task cancelled before it starts never runs; work that
        raises after its cancel event was set counts as cancelled (no ``on_error``); work that
        returns normally delivers its result even when cancelled (check ``handle.cancelled``),
        so an interrupted ingest can still report what it did.
        """
        if self._closed:
            raise RuntimeError("TaskRunner was shut down")
        handle = TaskHandle(next(self._ids))
        self._tasks[handle.task_id] = (handle, _Callbacks(on_success, on_error, on_progress))

        def progress(value: object) -> None:
            with handle._progress_lock:
                handle._progress_value = value
                if handle._progress_posted:
                    return
                handle._progress_posted = True
            self._progressed.emit(handle.task_id)

        def run() -> None:
            if handle.cancelled:
                self._finished.emit(handle.task_id, _CANCELLED, None)
                return
            try:
                result = fn(progress, handle._cancel)
            except BaseException as exc:  # reported, never lost in a worker thread
                if handle.cancelled or isinstance(exc, TaskCancelled):
                    log.debug("task %d ended by cancellation: %r", handle.task_id, exc)
                    self._finished.emit(handle.task_id, _CANCELLED, None)
                else:
                    log.error("background task %d failed", handle.task_id, exc_info=exc)
                    self._finished.emit(handle.task_id, _ERROR, error_message(exc))
                return
            self._finished.emit(handle.task_id, _SUCCESS, result)

        self._pool.start(_Runnable(run))
        return handle

    def active_count(self) -> int:
        """Tasks submitted whose final callback has not run yet (queued, running or in flight)."""
        return len(self._tasks)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel every task and wait for the pool. True when all work has ended in time.

        Results not yet delivered are discarded: after shutdown nothing calls back, because the
        widgets those callbacks would touch are usually being torn down.
        """
        self._closed = True
        for handle, _ in self._tasks.values():
            handle.cancel()
        finished = self._pool.waitForDone(timeout_ms)
        if finished:
            for handle, _ in self._tasks.values():
                handle._done = True
            self._tasks.clear()
        else:
            log.warning("background tasks still running after %d ms", timeout_ms)
        return finished

    @Slot(int)
    def _deliver_progress(self, task_id: int) -> None:
        entry = self._tasks.get(task_id)
        if entry is None or self._closed:
            return
        handle, callbacks = entry
        with handle._progress_lock:
            value = handle._progress_value
            handle._progress_posted = False
        if callbacks.on_progress is not None:
            self._call(callbacks.on_progress, value)

    @Slot(int, str, object)
    def _deliver_finished(self, task_id: int, kind: str, payload: object) -> None:
        entry = self._tasks.pop(task_id, None)
        if entry is None:
            return  # discarded by shutdown
        handle, callbacks = entry
        handle._done = True
        if self._closed:
            return  # ended after a shutdown that stopped waiting for it: nobody to call back
        if kind == _SUCCESS and callbacks.on_success is not None:
            self._call(callbacks.on_success, payload)
        elif kind == _ERROR and callbacks.on_error is not None:
            self._call(callbacks.on_error, payload)

    @staticmethod
    def _call(callback: Callable[[Any], None], value: object) -> None:
        # A failing callback is a GUI bug; log it instead of letting it escape into Qt's event
        # loop, where PySide would only print it.
        try:
            callback(value)
        except Exception:
            log.exception("task callback %r failed", callback)


# --- ModelWorker -------------------------------------------------------------------------------


class Answerer(Protocol):
    """What the model thread needs of an answer service (``AnswerService`` is one)."""

    def answer(
        self,
        question: str,
        history: Sequence[ChatMessage] = (),
        *,
        on_token: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        filters: SearchFilters | None = None,
    ) -> Answer: ...


ServiceFactory = Callable[[Engine | None], Answerer]

if TYPE_CHECKING:
    _real_service: type[Answerer] = AnswerService  # the real service fits the protocol
EngineFactory = Callable[[], Engine | None]


@dataclass(eq=False)
class _AskRequest:
    service_factory: ServiceFactory
    question: str
    history: Sequence[ChatMessage]
    stop: threading.Event = field(default_factory=threading.Event)


class _EngineHost(QObject):
    """Lives on the model thread; the only object that ever touches the engine."""

    loaded = Signal(object)
    load_failed = Signal(str)
    token = Signal(str)
    answered = Signal(object)
    failed = Signal(str)

    def __init__(self, home: QThread) -> None:
        super().__init__()
        self._home = home
        self._engine: Engine | None = None

    @Slot(object)
    def load(self, factory: EngineFactory) -> None:
        self._close_engine()
        try:
            engine = factory()
        except Exception as exc:
            log.error("loading the model failed", exc_info=exc)
            self.load_failed.emit(error_message(exc))
            return
        self._engine = engine
        self.loaded.emit(engine.info if engine is not None else None)

    @Slot(object)
    def ask(self, request: _AskRequest) -> None:
        try:
            service = request.service_factory(self._engine)
            answer = service.answer(
                request.question,
                request.history,
                on_token=self.token.emit,
                stop=request.stop,
            )
        except Exception as exc:
            log.error("answering failed", exc_info=exc)
            self.failed.emit(error_message(exc))
            return
        self.answered.emit(answer)

    @Slot()
    def stop(self) -> None:
        self._close_engine()
        # Hand ourselves back before the thread ends so the GUI side can delete us normally
        # (an object whose thread is gone can't process its own deleteLater).
        self.moveToThread(self._home)
        thread = QThread.currentThread()
        thread.quit()

    def _close_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            return
        try:
            engine.close()
        except Exception:
            log.exception("closing the model failed")


class ModelWorker(QObject):
    """Owns ONE QThread on which the chat engine is created, used and closed.

    Methods are called from the GUI thread; they queue work to the model thread and return at
    once. Requests run in order, so ``ask`` after ``load`` uses the new engine. ``loaded``
    carries the ``EngineInfo`` (or None when the factory returned no engine: sources-only).
    """

    loaded = Signal(object)
    load_failed = Signal(str)
    token = Signal(str)
    answered = Signal(object)
    failed = Signal(str)

    # GUI -> model thread. The host lives on the model thread, so these are queued.
    _load_requested = Signal(object)
    _ask_requested = Signal(object)
    _stop_requested = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("almanac-model")
        self._host: _EngineHost | None = None
        self._current: _AskRequest | None = None
        self._pending = 0  # asks not yet answered or failed (GUI thread only)
        self._shut_down = False
        self.info: EngineInfo | None = None

    # -- public API (GUI thread) --------------------------------------------------------------

    def load(self, factory: EngineFactory) -> None:
        """Close the current engine (on its thread) and build a new one with ``factory``."""
        self._ensure_started()
        self._load_requested.emit(factory)

    def ask(
        self,
        service_factory: ServiceFactory,
        question: str,
        history: list[ChatMessage],
    ) -> None:
        """Answer ``question`` on the model thread: ``token`` streams, then ``answered``/``failed``.

        ``service_factory(engine)`` builds the AnswerService there, so it always sees the engine
        the model thread currently holds.
        """
        self._ensure_started()
        request = _AskRequest(service_factory, question, list(history))
        self._current = request
        self._pending += 1
        self._ask_requested.emit(request)

    def stop(self) -> None:
        """Stop the generation in progress: the engine checks the flag after every token."""
        if self._current is not None:
            self._current.stop.set()

    def is_busy(self) -> bool:
        """An answer is being generated or waits in the queue."""
        return self._pending > 0

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Stop generation, close the engine on its thread, end the thread. True when it ended."""
        self._shut_down = True
        self.stop()
        if self._host is None or not self._thread.isRunning():
            return True
        # Queued behind any request already waiting, so the engine is closed after its last use;
        # ``stop`` above makes a running generation end within one token.
        self._stop_requested.emit()
        ended = self._thread.wait(timeout_ms)
        if not ended:
            log.warning("model thread still running after %d ms", timeout_ms)
        return bool(ended)

    # -- internals ----------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._shut_down:
            raise RuntimeError("ModelWorker was shut down")
        if self._host is not None:
            return
        host = _EngineHost(self.thread())
        host.moveToThread(self._thread)
        queued = Qt.ConnectionType.QueuedConnection
        self._load_requested.connect(host.load, queued)
        self._ask_requested.connect(host.ask, queued)
        self._stop_requested.connect(host.stop, queued)
        host.loaded.connect(self._on_loaded, queued)
        host.load_failed.connect(self.load_failed, queued)
        host.token.connect(self.token, queued)
        host.answered.connect(self._on_answered, queued)
        host.failed.connect(self._on_failed, queued)
        self._host = host
        self._thread.start()

    @Slot(object)
    def _on_loaded(self, info: object) -> None:
        self.info = info if isinstance(info, EngineInfo) else None
        self.loaded.emit(info)

    @Slot(object)
    def _on_answered(self, answer: object) -> None:
        self._pending = max(0, self._pending - 1)
        self.answered.emit(answer)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._pending = max(0, self._pending - 1)
        self.failed.emit(message)
