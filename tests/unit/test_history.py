from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from almanac.app.history import (
    Conversation,
    HistoryError,
    HistoryStore,
    answer_from_json,
    default_history_path,
)
from almanac.core.records import AnswerMode
from fakes import make_answer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path / "history.sqlite3")
    yield s
    s.close()


def test_create_get_rename_delete(store: HistoryStore) -> None:
    c = store.create()
    assert c.title == "New chat"
    assert store.get(c.id) == c
    renamed = store.rename(c.id, "  Printer   issues ")
    assert renamed.title == "Printer issues"
    assert store.get(c.id).title == "Printer issues"
    with pytest.raises(ValueError):
        store.rename(c.id, "   ")
    store.add_message(c.id, "user", "hello")
    other = store.create("Keep me")
    store.add_message(other.id, "user", "kept")
    store.delete(c.id)
    with pytest.raises(KeyError):
        store.get(c.id)
    assert store.messages(c.id) == []
    assert [x.id for x in store.list()] == [other.id]
    assert [m.content for m in store.messages(other.id)] == ["kept"]


def test_unknown_conversation_and_role_are_refused(store: HistoryStore) -> None:
    with pytest.raises(KeyError):
        store.add_message(999, "user", "x")
    with pytest.raises(KeyError):
        store.rename(999, "x")
    c = store.create()
    with pytest.raises(ValueError):
        store.add_message(c.id, "robot", "x")
    assert store.messages(c.id) == []


def test_list_is_most_recently_updated_first(store: HistoryStore) -> None:
    a = store.create("A")
    b = store.create("B")
    c = store.create("C")
    assert [x.title for x in store.list()] == ["C", "B", "A"]
    store.add_message(a.id, "user", "bump")
    assert [x.title for x in store.list()] == ["A", "C", "B"]
    assert store.get(a.id).updated > store.get(c.id).updated
    assert b.created < c.created


def test_search_matches_titles_and_message_text(store: HistoryStore) -> None:
    vpn = store.create("VPN setup")
    printer = store.create("Office")
    store.add_message(printer.id, "user", "The PRINTER on floor 3 jams")
    store.add_message(printer.id, "assistant", "Open tray Ä and remove the paper.")
    store.create("Unrelated")
    assert [c.id for c in store.list("printer")] == [printer.id]
    assert [c.id for c in store.list("vpn")] == [vpn.id]
    assert [c.id for c in store.list("tray ä")] == [printer.id]  # beyond ASCII case folding
    assert store.list("nothing like this") == []
    assert len(store.list("  ")) == 3
    # LIKE wildcards are literal text here.
    assert store.list("%") == []
    assert store.list("_") == []


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    first = HistoryStore(path)
    c = first.create("Persisted")
    first.add_message(c.id, "user", "question?")
    first.add_message(c.id, "assistant", "answer.", make_answer("question?"))
    first.close()

    second = HistoryStore(path)
    try:
        assert second.list() == [second.get(c.id)]
        assert second.get(c.id).title == "Persisted"
        msgs = second.messages(c.id)
        assert [(m.role, m.content) for m in msgs] == [
            ("user", "question?"),
            ("assistant", "answer."),
        ]
        assert msgs[1].answer == make_answer("question?")
        # New ids continue after the old ones.
        assert second.create().id > c.id
    finally:
        second.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version=99")
    with pytest.raises(HistoryError, match="newer Almanac"):
        HistoryStore(path)


def test_concurrent_add_message_from_four_threads(store: HistoryStore) -> None:
    conversations = [store.create(f"C{i}") for i in range(2)]
    errors: list[BaseException] = []
    per_thread = 50
    start = threading.Barrier(4)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                target = conversations[i % 2].id
                store.add_message(target, "user", f"t{n}-{i}")
                store.list()  # readers interleaved with writers
        except BaseException as exc:  # collected: an exception in a thread would pass silently
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    contents = [m.content for c in conversations for m in store.messages(c.id)]
    assert len(contents) == 4 * per_thread
    assert sorted(contents) == sorted(f"t{n}-{i}" for n in range(4) for i in range(per_thread))
    ids = [m.id for c in conversations for m in store.messages(c.id)]
    assert len(set(ids)) == len(ids)


def test_answer_round_trip_through_json(store: HistoryStore) -> None:
    answer = make_answer()
    data = json.loads(json.dumps(answer.to_json()))
    assert answer_from_json(data) == answer
    assert answer_from_json(data).to_json() == answer.to_json()

    c = store.create()
    stored = store.add_message(c.id, "assistant", answer.text, answer)
    assert stored.answer == answer
    loaded = store.messages(c.id)[0]
    assert loaded.answer == answer
    assert loaded.answer is not None
    assert loaded.answer.citations[0].page == 4
    assert loaded.answer.citations[1].page is None
    assert loaded.answer.also_retrieved[0].text == "misc <b>"  # stored as given, not escaped
    assert loaded.answer.mode is AnswerMode.MODEL


def test_answer_from_json_rejects_bad_data() -> None:
    good = make_answer().to_json()
    with pytest.raises(ValueError, match="mode"):
        answer_from_json({**good, "mode": "telepathy"})
    with pytest.raises(ValueError, match="grounded"):
        answer_from_json({**good, "grounded": "yes"})
    with pytest.raises(ValueError, match="page"):
        answer_from_json({**good, "citations": [{**good["citations"][0], "page": "4"}]})  # type: ignore[index]


def test_damaged_answer_row_still_shows_the_text(store: HistoryStore, tmp_path: Path) -> None:
    c = store.create()
    store.add_message(c.id, "assistant", "text survives", make_answer())
    store.close()
    with sqlite3.connect(tmp_path / "history.sqlite3") as raw:
        raw.execute("UPDATE messages SET answer = '{broken'")
    reopened = HistoryStore(tmp_path / "history.sqlite3")
    try:
        [m] = reopened.messages(c.id)
        assert m.content == "text survives"
        assert m.answer is None
    finally:
        reopened.close()


def test_auto_title_from_first_question(store: HistoryStore) -> None:
    c = store.create()
    question = "  How do I   connect the office printer to a laptop running the latest Windows?  "
    store.add_message(c.id, "user", question)
    title = store.get(c.id).title
    assert title.startswith("How do I connect the office printer")
    assert len(title) <= 61
    assert title.endswith("…")
    assert "  " not in title
    # Only the first question names the conversation.
    store.add_message(c.id, "assistant", "Use the wizard.")
    store.add_message(c.id, "user", "Another question")
    assert store.get(c.id).title == title

    short = store.create()
    store.add_message(short.id, "user", "VPN drops\nevery hour")
    assert store.get(short.id).title == "VPN drops every hour"

    named = store.create("My own title")
    store.add_message(named.id, "user", "Question")
    assert store.get(named.id).title == "My own title"


def test_delete_last_answer(store: HistoryStore) -> None:
    c = store.create()
    store.add_message(c.id, "user", "q1")
    store.add_message(c.id, "assistant", "a1", make_answer("q1"))
    store.add_message(c.id, "user", "q2")
    store.add_message(c.id, "assistant", "a2", make_answer("q2"))
    store.delete_last_answer(c.id)
    assert [m.content for m in store.messages(c.id)] == ["q1", "a1", "q2"]
    # The last message is a question now: nothing else goes.
    store.delete_last_answer(c.id)
    assert [m.content for m in store.messages(c.id)] == ["q1", "a1", "q2"]
    store.delete_last_answer(store.create().id)  # empty conversation: no error


def test_default_history_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALMANAC_DATA_DIR", str(tmp_path))
    assert default_history_path() == tmp_path / "history.sqlite3"
    monkeypatch.delenv("ALMANAC_DATA_DIR")
    assert default_history_path().name == "history.sqlite3"
    assert "Almanac" in default_history_path().parts


def test_conversation_is_a_frozen_record(store: HistoryStore) -> None:
    c = store.create()
    assert isinstance(c, Conversation)
    with pytest.raises(AttributeError):
        c.title = "x"  # type: ignore[misc]
