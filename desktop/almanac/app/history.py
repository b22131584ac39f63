"""Conversations and their messages, persisted in SQLite.

One connection guarded by a lock: the GUI thread lists and renames while the answer worker appends
messages, and SQLite connections are not safe to share without one. WAL keeps readers from blocking
on a writer (and a second Almanac process from failing at once: busy_timeout waits instead).
Answers are stored as the JSON that ``Answer.to_json`` produces, so the history keeps citations
without a table per record field; text is stored as given and escaped only where it is displayed.
"""

from __future__ import annotations

import builtins
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from platformdirs import user_data_path

from almanac.app.environment import read_environment
from almanac.core.records import Answer, AnswerMode, Citation

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
HISTORY_FILE = "history.sqlite3"
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 60
ROLES = ("user", "assistant")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    answer TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX IF NOT EXISTS conversations_by_updated ON conversations(updated DESC, id DESC);
"""


class HistoryError(RuntimeError):
    """The history database cannot be used by this version (e.g. written by a newer Almanac)."""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    title: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str  # "user" | "assistant"
    content: str
    answer: Answer | None  # the full record behind an assistant message, when there was one
    created: float


def default_history_path() -> Path:
    override = read_environment().data_dir
    if override is not None:
        return override / HISTORY_FILE
    return user_data_path("Almanac", appauthor=False) / HISTORY_FILE


# --- Answer JSON ------------------------------------------------------------------------------


def _str(data: dict[str, object], key: str, default: str = "") -> str:
    value = data.get(key, default)
    if isinstance(value, str):
        return value
    raise ValueError(f"field {key!r} must be text, not {value!r}")


def _bool(data: dict[str, object], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if isinstance(value, bool):
        return value
    raise ValueError(f"field {key!r} must be true or false, not {value!r}")


def _int(data: dict[str, object], key: str, default: int = 0) -> int:
    value = data.get(key, default)
    # bool is an int subclass: a stored true where a number belongs is damage, not 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"field {key!r} must be a whole number, not {value!r}")


def _float(data: dict[str, object], key: str, default: float = 0.0) -> float:
    value = data.get(key, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"field {key!r} must be a number, not {value!r}")


def _optional_int(data: dict[str, object], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"field {key!r} must be a whole number or null, not {value!r}")


def _optional_float(data: dict[str, object], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"field {key!r} must be a number or null, not {value!r}")


def _citation_from_json(data: object) -> Citation:
    if not isinstance(data, dict):
        raise ValueError(f"a citation must be a JSON object, not {data!r}")
    return Citation(
        number=_int(data, "number"),
        path=_str(data, "path"),
        page=_optional_int(data, "page"),
        start=_int(data, "start"),
        end=_int(data, "end"),
        heading=_str(data, "heading"),
        score=_float(data, "score"),
        text=_str(data, "text"),
    )


def _citations(data: dict[str, object], key: str) -> tuple[Citation, ...]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ValueError(f"answer field {key!r} must be a list")
    return tuple(_citation_from_json(c) for c in items)


def _int_list(data: dict[str, object], key: str) -> tuple[int, ...]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in items
    ):
        raise ValueError(f"answer field {key!r} must be a list of whole numbers")
    return tuple(items)


def _str_list(data: dict[str, object], key: str) -> tuple[str, ...]:
    items = data.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"answer field {key!r} must be a list of strings")
    return tuple(items)


def answer_from_json(data: dict[str, object]) -> Answer:
    """The inverse of ``Answer.to_json``; missing keys take the record's defaults.

    ``to_json`` leaves ``tokens_generated`` out and rounds scores and ``seconds_total``, so those
    come back as stored (0 tokens, rounded numbers). Raises ValueError on malformed data.
    """
    mode = data.get("mode")
    try:
        answer_mode = AnswerMode(str(mode))
    except ValueError:
        raise ValueError(f"unknown answer mode {mode!r}") from None
    return Answer(
        question=_str(data, "question"),
        text=_str(data, "answer"),
        mode=answer_mode,
        citations=_citations(data, "citations"),
        also_retrieved=_citations(data, "also_retrieved"),
        grounded=_bool(data, "grounded"),
        unsupported_sentences=_str_list(data, "unsupported_sentences"),
        invalid_markers=_int_list(data, "invalid_markers"),
        stopped=_bool(data, "stopped"),
        retrieval_query=_str(data, "retrieval_query"),
        seconds_to_first_token=_optional_float(data, "seconds_to_first_token"),
        seconds_total=_float(data, "seconds_total"),
        unsupported_text=_str(data, "unsupported_text", "") if data.get("unsupported_text") else "",
        loop_cut=_bool(data, "loop_cut"),
    )


# --- the store --------------------------------------------------------------------------------


def _fold(text: str | None) -> str:
    # SQLite LIKE and lower() fold ASCII only; casefold() also matches "Ä" with "ä", "ß" with "ss".
    return (text or "").casefold()


def auto_title(question: str) -> str:
    """A conversation title from its first question: one line, at most ~60 characters."""
    words = " ".join(question.split())
    if len(words) <= TITLE_LENGTH:
        return words
    cut = words[:TITLE_LENGTH]
    # Break at a word boundary when there is one reasonably close to the limit.
    space = cut.rfind(" ")
    if space >= TITLE_LENGTH // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:") + "…"


class HistoryStore:
    """Conversations in one SQLite file; every method may be called from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Autocommit mode: transactions are explicit (see _write), so a read never holds one open.
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=5.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.create_function("almanac_fold", 1, _fold, deterministic=True)
        self._last_time = 0.0
        try:
            self._prepare()
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self) -> None:
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"{self.path} was written by a newer Almanac (schema {version}, "
                    f"this version reads {SCHEMA_VERSION})"
                )
            with self._write() as conn:
                # Statement by statement: executescript() would commit the open transaction first.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction under the lock; rolled back if the block raises."""
        with self._lock:
            # IMMEDIATE takes the write lock up front, so a read-then-write block cannot deadlock
            # with another process doing the same.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _now(self) -> float:
        # Strictly increasing within this store, so "most recently updated first" is well defined
        # even for operations inside one clock tick (or across a clock step backwards).
        now = max(time.time(), self._last_time + 1e-6)
        self._last_time = now
        return now

    # --- conversations

    def create(self, title: str = DEFAULT_TITLE) -> Conversation:
        title = title.strip() or DEFAULT_TITLE
        with self._write() as conn:
            now = self._now()
            cur = conn.execute(
                "INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
                (title, now, now),
            )
            assert cur.lastrowid is not None
            return Conversation(cur.lastrowid, title, now, now)

    def rename(self, conversation_id: int, title: str) -> Conversation:
        title = " ".join(title.split())
        if not title:
            raise ValueError("A conversation title cannot be empty")
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
            )
            if cur.rowcount == 0:
                raise KeyError(f"No conversation {conversation_id}")
            return self._get(conversation_id)

    def delete(self, conversation_id: int) -> None:
        with self._write() as conn:
            # Explicit, not only ON DELETE CASCADE: that depends on a per-connection pragma.
            conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def list(self, query: str = "") -> builtins.list[Conversation]:
        needle = _fold(query.strip())
        with self._lock:
            if not needle:
                rows = self._conn.execute(
                    "SELECT * FROM conversations ORDER BY updated DESC, id DESC"
                ).fetchall()
            else:
                rows = self._conn.execute(
                    """
                    SELECT * FROM conversations AS c
                    WHERE instr(almanac_fold(c.title), :q) > 0
                       OR EXISTS (
                           SELECT 1 FROM messages AS m
                           WHERE m.conversation_id = c.id
                             AND instr(almanac_fold(m.content), :q) > 0
                       )
                    ORDER BY c.updated DESC, c.id DESC
                    """,
                    {"q": needle},
                ).fetchall()
        return [_conversation(r) for r in rows]

    def get(self, conversation_id: int) -> Conversation:
        with self._lock:
            return self._get(conversation_id)

    def _get(self, conversation_id: int) -> Conversation:
        row = self._conn.execute(
            "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"No conversation {conversation_id}")
        return _conversation(row)

    # --- messages

    def add_message(
        self, conversation_id: int, role: str, content: str, answer: Answer | None = None
    ) -> StoredMessage:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        answer_json = json.dumps(answer.to_json(), ensure_ascii=False) if answer else None
        with self._write() as conn:
            conversation = self._get(conversation_id)
            now = self._now()
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, answer, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (conversation_id, role, content, answer_json, now),
            )
            assert cur.lastrowid is not None
            title = conversation.title
            if role == "user" and title == DEFAULT_TITLE and auto_title(content):
                earlier = conn.execute(
                    "SELECT COUNT(*) FROM messages "
                    "WHERE conversation_id = ? AND role = 'user' AND id < ?",
                    (conversation_id, cur.lastrowid),
                ).fetchone()[0]
                if earlier == 0:
                    title = auto_title(content)
            conn.execute(
                "UPDATE conversations SET updated = ?, title = ? WHERE id = ?",
                (now, title, conversation_id),
            )
            return StoredMessage(cur.lastrowid, conversation_id, role, content, answer, now)

    def messages(self, conversation_id: int) -> builtins.list[StoredMessage]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        return [_message(r) for r in rows]

    def delete_last_answer(self, conversation_id: int) -> None:
        """Drop the trailing assistant message (for "regenerate"); a trailing question stays."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT id, role FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
            if row is not None and row["role"] == "assistant":
                conn.execute("DELETE FROM messages WHERE id = ?", (row["id"],))

    # --- lifetime

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        int(row["id"]), str(row["title"]), float(row["created"]), float(row["updated"])
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    answer: Answer | None = None
    if row["answer"] is not None:
        # One damaged row should not make a whole conversation unreadable: show the text without
        # its sources and say why in the log.
        try:
            data = json.loads(row["answer"])
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            answer = answer_from_json(data)
        except ValueError as exc:
            log.warning("Stored answer of message %s is unreadable: %s", row["id"], exc)
    return StoredMessage(
        int(row["id"]),
        int(row["conversation_id"]),
        str(row["role"]),
        str(row["content"]),
        answer,
        float(row["created"]),
    )
