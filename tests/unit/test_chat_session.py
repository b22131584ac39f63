"""The chat session (almanac.app.chat) on a real history file, without Qt."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from almanac.app.chat import ChatSession
from almanac.app.history import HistoryStore
from almanac.core.llm.base import ChatMessage
from almanac.core.records import Answer, AnswerMode
from fakes import make_answer


@pytest.fixture
def history(tmp_path: Path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    yield store
    store.close()


def refusal(question: str) -> Answer:
    return dataclasses.replace(
        make_answer(question), text="Not in your documents.", mode=AnswerMode.SOURCES_ONLY
    )


def test_turns_are_saved_as_they_happen_and_follow_ups_see_the_models_answers(
    history: HistoryStore, tmp_path: Path
) -> None:
    chat = ChatSession(history)
    first = chat.ask("  How do I reset my password?  ")
    assert first.text == "How do I reset my password?"
    assert first.prior == ()
    assert chat.conversation_id == first.conversation_id
    assert history.get(first.conversation_id).title == "How do I reset my password?"
    answer = make_answer()
    chat.record_answer(first.conversation_id, answer)

    second = chat.ask("And the printer?")
    assert second.conversation_id == first.conversation_id
    assert second.prior == (
        ChatMessage("user", "How do I reset my password?"),
        ChatMessage("assistant", answer.text),
    )
    chat.record_answer(second.conversation_id, refusal("And the printer?"))
    # A refusal is not something the model said: the next question does not show it as such.
    third = chat.ask("Who won the 2018 World Cup?")
    assert [m.role for m in third.prior] == ["user", "assistant", "user"]
    assert third.prior[-1] == ChatMessage("user", "And the printer?")

    # Read back by a new session on the same file (a restart): the same turns, answers included.
    reopened = HistoryStore(tmp_path / "history.sqlite3")
    try:
        again = ChatSession(reopened)
        turns = again.open(first.conversation_id)
        assert [(t.role, t.text) for t in turns] == [(t.role, t.text) for t in chat.turns]
        assert turns[1].answer == answer
        assert (
            again.last_answer() is not None and again.last_answer().mode is AnswerMode.SOURCES_ONLY
        )
    finally:
        reopened.close()


def test_an_answer_lands_in_the_conversation_it_was_asked_in(history: HistoryStore) -> None:
    chat = ChatSession(history)
    asked = chat.ask("How do I reset my password?")
    other = history.create("Other")
    chat.open(other.id)  # the user opened another chat while the answer was generated
    chat.record_answer(asked.conversation_id, make_answer())
    assert chat.turns == ()
    saved = history.messages(asked.conversation_id)
    assert [m.role for m in saved] == ["user", "assistant"]
    assert saved[1].answer == make_answer()


def test_an_answer_for_a_deleted_conversation_is_dropped(history: HistoryStore) -> None:
    chat = ChatSession(history)
    asked = chat.ask("How do I reset my password?")
    chat.delete(asked.conversation_id)
    assert chat.conversation_id is None and chat.turns == ()
    chat.record_answer(asked.conversation_id, make_answer())  # no error, nothing saved
    assert [c.id for c in history.list()] == []
    with pytest.raises(KeyError):
        chat.open(asked.conversation_id)


def test_regenerate_forgets_the_last_answer_and_asks_its_question_again(
    history: HistoryStore,
) -> None:
    chat = ChatSession(history)
    assert chat.regenerate() is None  # a new chat has nothing to regenerate
    first = chat.ask("q1")
    chat.record_answer(first.conversation_id, make_answer("q1"))
    chat.ask("q2")
    chat.record_answer(first.conversation_id, make_answer("q2"))

    again = chat.regenerate()
    assert again is not None
    assert again.text == "q2"
    assert again.prior == (ChatMessage("user", "q1"), ChatMessage("assistant", make_answer().text))
    assert [m.content for m in history.messages(first.conversation_id)][-1] == "q2"
    assert [t.role for t in chat.turns] == ["user", "assistant", "user"]
    # The answer failed (nothing recorded): regenerate asks the same question, once more.
    retried = chat.regenerate()
    assert retried is not None and retried.text == "q2"
    assert len(history.messages(first.conversation_id)) == 3


def test_an_empty_question_is_refused(history: HistoryStore) -> None:
    chat = ChatSession(history)
    with pytest.raises(ValueError):
        chat.ask("   ")
    assert history.list() == []


def test_export_has_the_questions_answers_sources_and_warnings(history: HistoryStore) -> None:
    chat = ChatSession(history)
    with pytest.raises(ValueError, match="nothing to export"):
        chat.export_markdown()
    asked = chat.ask("How do I reset my password?")
    history.rename(asked.conversation_id, "Password help")
    answer = make_answer()
    chat.record_answer(asked.conversation_id, answer)
    md = chat.export_markdown()
    lines = md.splitlines()
    assert lines[0] == "# Password help"
    assert md.index("## You") < md.index("How do I reset my password?") < md.index("## Almanac")
    assert answer.text in md
    assert "- [1] manual.pdf, page 4 \u2014 Signing in > Password reset" in lines
    assert "- [2] faq.md" in lines  # no page, no heading
    assert "It takes a minute." in md.split("not supported by the cited passages")[1]
    assert "_(stopped before the end)_" in md
    assert "other.txt" in md.split("Also retrieved (not cited)")[1]  # retrieved, marked as such
