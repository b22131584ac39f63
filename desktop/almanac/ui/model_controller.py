"""The chat model, for the window: which one answers (``almanac.app.models.ModelSelection``: the
user's, $ALMANAC_MODEL, or Almanac's default), loading it on the ``ModelWorker``, and adding a
GGUF the user picks (checked on the ``TaskRunner``, then saved and loaded).

The window shows what this says: ``status`` (the status bar's model label), ``banner`` (the
"no model" banner's text; "" hides it), ``notice`` / ``notice_cleared`` (the notice line, with
the cause "model" so that a fixed problem clears it), ``message`` (a passing status-bar text) and
``settings_saved`` (the Settings after a model was added).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from almanac.app.models import ModelSelection
from almanac.app.settings import Settings, SettingsError
from almanac.core.llm.base import EngineInfo
from almanac.ui.workers import ModelWorker, ProgressFn, TaskCancelled, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from almanac.app.services import ModelChoice
    from almanac.core.llm.base import Engine
    from almanac.core.llm.catalog import AddedModel

__all__ = ["NO_MODEL_TEXT", "ModelController", "first_start_hint"]

NO_MODEL_TEXT = "No model: answers are the best passages."


def first_start_hint(with_model: bool) -> str:
    """What the first start suggests. True whenever it shows: the samples are indexed in the
    background, and the status bar (not this text) says how far that has got; adding a model
    is suggested only when there is none (the default model writes answers)."""
    hint = "Ask about the sample documents below (the status bar shows their indexing)"
    if with_model:
        return f"{hint} or drop your own files on this window."
    return f"{hint}, drop your own files on this window, or add a model for written answers."


class ModelController(QObject):
    status = Signal(str)
    banner = Signal(str)  # "" hides it
    notice = Signal(str, str)  # text, cause
    notice_cleared = Signal(str)  # the cause whose notice is no longer true ("": any notice)
    message = Signal(str, int)  # text, milliseconds (0: until replaced)
    settings_saved = Signal(object)  # Settings

    def __init__(
        self,
        models: ModelSelection,
        worker: ModelWorker,
        runner: TaskRunner,
        *,
        first_start: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.models = models
        self.worker = worker
        self.runner = runner
        self.first_start = first_start
        self.failed = False  # the last load failed: the banner says why until the next load
        # What the status bar calls the model being loaded: the default model's own name rather
        # than its joined base file's ("gemma-3-270m-q4_k_m-a5fd3b62230a.gguf").
        self._loading_name = ""
        self._detached = False
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)

    def choice(self, settings: Settings) -> ModelChoice:
        self.models.settings = settings
        return self.models.current()

    def load(self, settings: Settings) -> None:
        """Load the model these Settings choose (nothing: sources-only) on the model worker."""
        choice = self.choice(settings)
        path = choice.path
        self.failed = False
        if path is None:
            self.worker.load(lambda: None)
            self.refresh_banner(settings)
            return

        def factory() -> Engine | None:
            # Hashing ~100 MB (and deriving the default's runtime file once) belongs on the worker.
            from almanac.app.answering import build_engine_from_settings

            load = choice.prepare() if choice.prepare is not None else path
            return build_engine_from_settings(
                load, settings, lora=choice.lora, chat_format=choice.chat_format
            )

        self._loading_name = choice.name
        self.status.emit(f"Loading {choice.name}…")
        self.worker.load(factory)

    def refresh_banner(self, settings: Settings) -> None:
        choice = self.choice(settings)
        if choice.path is None:
            if choice.problem:
                self.notice.emit(
                    f"Almanac's default model can't be used: {choice.problem}.", "model"
                )
            hint = (
                first_start_hint(with_model=False)
                if self.first_start
                else "Add a GGUF model for written answers."
            )
            self.banner.emit(f"{NO_MODEL_TEXT} {hint}")
            self.status.emit("Sources-only")
        elif not self.failed:
            self.banner.emit("")

    def add_file(self, path: Path, settings: Settings) -> TaskHandle:
        """Check the GGUF (header, catalog hash) in the background, then save and load it."""
        self.message.emit(f"Checking {path.name}…", 0)
        models = self.models

        def work(progress: ProgressFn, cancel: threading.Event) -> AddedModel:
            def on_hash(done: int, total: int) -> None:
                if cancel.is_set():
                    raise TaskCancelled()
                progress((done, total))

            return models.check(path, progress=on_hash)

        def on_progress(value: object) -> None:
            if isinstance(value, tuple) and len(value) == 2 and value[1]:
                self.message.emit(f"Checking {path.name}… {int(100 * value[0] / value[1])} %", 0)

        return self.runner.submit(
            work,
            on_success=lambda added: self._added(added, settings),
            on_error=lambda msg: self._refused(path, msg),
            on_progress=on_progress,
        )

    def detach(self) -> None:
        """Hear nothing more from the worker (the window is closing)."""
        self._detached = True
        for signal, slot in (
            (self.worker.loaded, self._on_loaded),
            (self.worker.load_failed, self._on_load_failed),
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)

    def _on_loaded(self, info: object) -> None:
        if self._detached:
            return
        if isinstance(info, EngineInfo):
            self.failed = False
            self.status.emit(f"Model: {self._loading_name or info.model} · {info.backend}")
            self.banner.emit("")
            self.notice_cleared.emit("model")
        else:
            self.refresh_banner(self.models.settings)

    def _on_load_failed(self, message: str) -> None:
        if self._detached:
            return
        self.failed = True
        self.banner.emit(
            f"The model could not be loaded: {message}. Answers are the best passages."
        )
        self.status.emit("Sources-only")

    def _added(self, added: AddedModel, settings: Settings) -> None:
        if self._detached:
            return
        self.models.settings = settings
        try:
            saved = self.models.use(added)
        except SettingsError as exc:
            self.notice.emit("; ".join(exc.reasons), "")
            return
        except OSError as exc:
            self.notice.emit(f"Could not save the settings: {exc}", "")
            return
        from almanac.core.llm.gguf_file import describe

        verified = " (verified against the catalog)" if added.verified else ""
        self.message.emit(f"Model added: {describe(added.info)}{verified}", 8000)
        self.notice_cleared.emit("")
        self.settings_saved.emit(saved)  # the window loads it (once its services are open)

    def _refused(self, path: Path, message: str) -> None:
        if not self._detached:
            self.message.emit("", 0)
            self.notice.emit(f"{path.name} was not added: {message}", "")
