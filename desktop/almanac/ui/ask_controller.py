"""Asking, for the window: one question at a time, answered on the ``ModelWorker`` by the answer
service that ``almanac.app.answering`` builds from the user's Settings; the chat session
(``almanac.app.chat``) records the answer in the conversation it was asked in, even when the user
has opened another chat meanwhile.

The window shows what this reports: ``token`` (a piece of the answer being streamed),
``answered`` and ``failed``, each with the id of the conversation that asked."""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QObject, Signal

from almanac.app.answering import build_answer_service
from almanac.app.chat import ChatSession, Question
from almanac.app.services import Services
from almanac.app.settings import Settings
from almanac.core.answering.answer import AnswerService
from almanac.core.llm.base import Engine
from almanac.core.records import Answer
from almanac.ui.workers import ModelWorker


class AskController(QObject):
    token = Signal(str, object)  # piece, conversation id
    answered = Signal(object, object)  # Answer, conversation id (None: none was open)
    failed = Signal(str, object)  # message, conversation id

    def __init__(
        self,
        services: Services,
        chat: ChatSession,
        model_worker: ModelWorker,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.chat = chat
        self.model_worker = model_worker
        self.generating = False
        self.asking_conversation: int | None = None
        model_worker.token.connect(self._on_token)
        model_worker.answered.connect(self._on_answered)
        model_worker.failed.connect(self._on_failed)

    def detach(self) -> None:
        """Hear nothing more from the worker (the window is closing)."""
        w = self.model_worker
        for signal, slot in (
            (w.token, self._on_token),
            (w.answered, self._on_answered),
            (w.failed, self._on_failed),
        ):
            with contextlib.suppress(RuntimeError, TypeError):
                signal.disconnect(slot)

    def asking_in(self, conversation_id: int | None) -> bool:
        """An answer for this conversation is being generated."""
        return self.generating and self.asking_conversation == conversation_id

    def ask(self, settings: Settings, question: Question) -> None:
        self.generating = True
        self.asking_conversation = question.conversation_id
        services = self.services  # captured on the GUI thread; the factory runs on the model's

        def factory(engine: Engine | None) -> AnswerService:
            return build_answer_service(services, engine, settings)

        self.model_worker.ask(factory, question.text, list(question.prior))

    def stop(self) -> bool:
        """Stop the answer being generated; False when there is none."""
        if not self.generating:
            return False
        self.model_worker.stop()
        return True

    def _on_token(self, piece: str) -> None:
        if self.generating:
            self.token.emit(piece, self.asking_conversation)

    def _on_answered(self, answer: object) -> None:
        if not isinstance(answer, Answer):
            return
        self.generating = False
        cid, self.asking_conversation = self.asking_conversation, None
        self.chat.record_answer(cid, answer)
        self.answered.emit(answer, cid)

    def _on_failed(self, message: str) -> None:
        self.generating = False
        cid, self.asking_conversation = self.asking_conversation, None
        self.failed.emit(message, cid)
