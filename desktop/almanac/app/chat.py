"""A chat session: the conversation on screen, its turns saved in the history as they happen, and
what the model is asked next (the question and the earlier turns it may see).

Both front ends hold the conversation here, not in a widget: the window renders these turns, and
a test or a command line drives the same session without Qt. Answering itself is the front end's
(the window answers on its model thread); the session only says what to ask and records what came
back, in the conversation it was asked in even when another one is open by then.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from almanac.app.chat_export import conversation_markdown
from almanac.app.history import HistoryStore
from almanac.core.llm.base import ChatMessage
from almanac.core.records import Answer, AnswerMode

__all__ = ["ChatSession", "Question", "Turn"]

# Answers the model wrote, which a follow-up may refer to. A refusal or a list of passages is not
# something the model said, and showing it to the model as its own words invites it to go on
# from there instead of from the sources.
_MODEL_MODES = (AnswerMode.MODEL, AnswerMode.GENERAL)


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # "user" | "assistant"
    text: str
    answer: Answer | None = None  # the full record behind an assistant turn


@dataclass(frozen=True, slots=True)
class Question:
    """What to ask the model: in which conversation, the question, and the earlier turns."""

    conversation_id: int
    text: str
    prior: tuple[ChatMessage, ...]


class ChatSession:
    """The open conversation (None: a new chat, created with its first question)."""

    def __init__(self, history: HistoryStore) -> None:
        self.history = history
        self.conversation_id: int | None = None
        self._turns: list[Turn] = []

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(self._turns)

    def new(self) -> None:
        self.conversation_id = None
        self._turns = []

    def open(self, conversation_id: int) -> tuple[Turn, ...]:
        """Read a conversation back from the history (KeyError: there is no such one)."""
        self.history.get(conversation_id)
        self.conversation_id = conversation_id
        self._turns = [
            Turn(m.role, m.content, m.answer) for m in self.history.messages(conversation_id)
        ]
        return self.turns

    def ask(self, text: str) -> Question:
        """Save the question (creating the conversation with the first one) and say what to ask."""
        text = text.strip()
        if not text:
            raise ValueError("the question is empty")
        prior = self.prior()
        if self.conversation_id is None:
            self.conversation_id = self.history.create().id
        self.history.add_message(self.conversation_id, "user", text)
        self._turns.append(Turn("user", text))
        return Question(self.conversation_id, text, prior)

    def regenerate(self) -> Question | None:
        """Forget the last answer and ask its question again; None when there is no question."""
        if self.conversation_id is None:
            return None
        if self._turns and self._turns[-1].role == "assistant":
            self.history.delete_last_answer(self.conversation_id)
            self._turns.pop()
        if not self._turns or self._turns[-1].role != "user":
            return None
        question = self._turns[-1].text
        return Question(self.conversation_id, question, self.prior(self._turns[:-1]))

    def record_answer(self, conversation_id: int | None, answer: Answer) -> None:
        """An answer came back for the conversation it was asked in: saved there (unless it was
        deleted meanwhile), and one more turn here when that conversation is the open one."""
        if conversation_id is None:
            return
        with contextlib.suppress(KeyError):
            self.history.add_message(conversation_id, "assistant", answer.text, answer=answer)
        if conversation_id == self.conversation_id:
            self._turns.append(Turn("assistant", answer.text, answer))

    def prior(self, turns: list[Turn] | None = None) -> tuple[ChatMessage, ...]:
        """The earlier turns as the model may see them: the questions and its own answers."""
        messages: list[ChatMessage] = []
        for t in self._turns if turns is None else turns:
            if t.role == "user":
                messages.append(ChatMessage("user", t.text))
            elif t.answer is not None and t.answer.mode in _MODEL_MODES:
                messages.append(ChatMessage("assistant", t.answer.text))
        return tuple(messages)

    def last_answer(self) -> Answer | None:
        return next((t.answer for t in reversed(self._turns) if t.answer is not None), None)

    def rename(self, conversation_id: int, title: str) -> None:
        """ValueError for a blank title, KeyError for a conversation that is gone."""
        self.history.rename(conversation_id, title)

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation; the open one becomes a new chat."""
        self.history.delete(conversation_id)
        if conversation_id == self.conversation_id:
            self.new()

    def title(self) -> str:
        if self.conversation_id is None:
            return ""
        return self.history.get(self.conversation_id).title

    def export_markdown(self) -> str:
        """The open conversation as Markdown (sources, pages and warnings as the chat shows)."""
        if self.conversation_id is None:
            raise ValueError("nothing to export: ask a question first")
        return conversation_markdown(self.title(), self._turns)
