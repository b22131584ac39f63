"""The chat transcript (a QTextBrowser that never follows a link itself) and the input box."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QTextBrowser, QWidget

from almanac.core.records import Answer, AnswerMode, Citation
from almanac.ui.markdown_render import render_answer_html, render_plain_html

_CITE_HREF = re.compile(r'href="cite:(\d+)"')
_SNIPPET = 240

_STYLE = """
<style>
.msg { margin-top: 10px; margin-bottom: 4px; }
.who { font-weight: bold; }
.muted { color: #7a7f87; }
.note { color: #8a6d1f; }
.sources { margin-left: 14px; }
.unsupported { color: #8a3b1f; margin-left: 14px; }
</style>
"""


@dataclass(slots=True)
class Entry:
    role: str  # "user" | "assistant"
    text: str
    answer: Answer | None = None
    revealed: bool = False  # a withheld answer's model text is shown


def where(c: Citation, root: str | None = None) -> str:
    """``faq.md, page 3 - Heading`` (relative to ``root`` when it is inside it)."""
    shown = c.path
    if root and c.path.startswith(root.rstrip("/") + "/"):
        shown = c.path[len(root.rstrip("/")) + 1 :]
    else:
        shown = Path(c.path).name
    if c.page is not None:
        shown += f", page {c.page}"
    if c.heading:
        shown += f" — {c.heading}"
    return shown


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _SNIPPET:
        flat = flat[:_SNIPPET].rsplit(" ", 1)[0] + " …"
    return flat


def _sources_html(index: int, title: str, citations: tuple[Citation, ...]) -> str:
    items = []
    for c in citations:
        link = f'<a href="cite:{index}/{c.number}">[{c.number}]</a>'
        items.append(
            f"<li>{link} <b>{html.escape(where(c))}</b><br>"
            f'<span class="muted">{html.escape(_snippet(c.text))}</span></li>'
        )
    return f'<div class="sources"><b>{title}</b><ul>{"".join(items)}</ul></div>'


UNSUPPORTED_LABEL = "Unsupported by your documents"


def _withheld_html(index: int, answer: Answer, revealed: bool) -> str:
    """The refusal, the passages, and the model's own text only on request, labelled."""
    first = answer.text.strip().splitlines()[0] if answer.text.strip() else ""
    parts = [render_plain_html(first)]
    if answer.citations:
        parts.append(_sources_html(index, "Closest passages", answer.citations))
    if revealed:
        parts.append(
            f'<div class="unsupported"><b>{UNSUPPORTED_LABEL}</b> '
            f"<small>(the model's answer, withheld)</small>"
            f"{render_plain_html(answer.unsupported_text)}"
            f'<small><a href="reveal:{index}">Hide it</a></small></div>'
        )
    else:
        parts.append(
            f'<p class="muted"><small><a href="reveal:{index}">Show the model\'s answer</a> '
            f"({UNSUPPORTED_LABEL.lower()})</small></p>"
        )
    if answer.stopped:
        parts.append('<p class="muted">(stopped)</p>')
    return "".join(parts)


def answer_html(index: int, answer: Answer, revealed: bool = False) -> str:
    """One answer: its text with [n] as links, then its sources, also-retrieved and notes."""
    numbers = {c.number for c in answer.citations} | {c.number for c in answer.also_retrieved}
    if answer.withheld:
        body = _withheld_html(index, answer, revealed)
        return _CITE_HREF.sub(lambda m: f'href="cite:{index}/{m.group(1)}"', body)
    if answer.mode is AnswerMode.SOURCES_ONLY:
        # The text repeats each passage on one line, plus a "no model" hint the banner already
        # gives: show its first line, then the passages as a list.
        intro = answer.text.strip().splitlines()[0] if answer.text.strip() else ""
        body = render_plain_html(intro)
    else:
        body = render_answer_html(answer.text, numbers)
    # Tie each marker to this answer so that clicking an old answer opens its own passage.
    body = _CITE_HREF.sub(lambda m: f'href="cite:{index}/{m.group(1)}"', body)
    parts = [body]
    if answer.stopped:
        parts.append('<p class="muted">(stopped)</p>')
    if answer.citations:
        title = "Passages" if answer.mode is AnswerMode.SOURCES_ONLY else "Sources"
        parts.append(_sources_html(index, title, answer.citations))
    if answer.also_retrieved:
        parts.append(_sources_html(index, "Also retrieved (not cited)", answer.also_retrieved))
    if answer.unsupported_sentences:
        listed = "".join(f"<li>{html.escape(s)}</li>" for s in answer.unsupported_sentences)
        parts.append(
            '<div class="note"><small>Not supported by the cited passages:</small>'
            f"<ul>{listed}</ul></div>"
        )
    if answer.mode is AnswerMode.GENERAL:
        parts.append(
            '<p class="note"><small>General knowledge, not from your documents.</small></p>'
        )
    return "".join(parts)


class Transcript(QTextBrowser):
    """Renders entries; ``cite:`` links become ``citation_requested``; other links do nothing."""

    citation_requested = Signal(object)  # Citation
    link_refused = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.entries: list[Entry] = []
        self._streaming: str | None = None
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(40)
        self._render_timer.timeout.connect(self.refresh)
        self.anchorClicked.connect(self._on_anchor)

    # -- content ------------------------------------------------------------------------------

    def set_entries(self, entries: list[Entry]) -> None:
        self.entries = list(entries)
        self._streaming = None
        self.refresh()

    def add_user(self, text: str) -> None:
        self.entries.append(Entry("user", text))
        self.refresh()

    def start_answer(self) -> None:
        self._streaming = ""
        self.refresh()

    def append_token(self, piece: str) -> None:
        if self._streaming is None:
            self._streaming = ""
        self._streaming += piece
        if not self._render_timer.isActive():
            self._render_timer.start()

    def stop_rendering(self) -> None:
        self._render_timer.stop()

    def streaming_text(self) -> str | None:
        return self._streaming

    def finish_answer(self, answer: Answer | None) -> None:
        self._streaming = None
        self._render_timer.stop()
        if answer is not None:
            self.entries.append(Entry("assistant", answer.text, answer))
        self.refresh()

    def add_error(self, message: str) -> None:
        self._streaming = None
        self._render_timer.stop()
        self.entries.append(Entry("assistant", message))
        self.refresh()

    def drop_last_answer(self) -> None:
        if self.entries and self.entries[-1].role == "assistant":
            self.entries.pop()
            self.refresh()

    def last_answer(self) -> Answer | None:
        for e in reversed(self.entries):
            if e.answer is not None:
                return e.answer
        return None

    def refresh(self) -> None:
        blocks = [_STYLE]
        for i, e in enumerate(self.entries):
            if e.role == "user":
                blocks.append(
                    f'<div class="msg"><span class="who">You</span>'
                    f"{render_plain_html(e.text)}</div>"
                )
            elif e.answer is not None:
                blocks.append(
                    f'<div class="msg"><span class="who">Almanac</span>'
                    f"{answer_html(i, e.answer, e.revealed)}</div><hr>"
                )
            else:
                blocks.append(
                    f'<div class="msg"><span class="who">Almanac</span>'
                    f'<span class="note">{render_plain_html(e.text)}</span></div><hr>'
                )
        if self._streaming is not None:
            shown = self._streaming or "…"
            blocks.append(
                f'<div class="msg"><span class="who">Almanac</span>{render_plain_html(shown)}</div>'
            )
        self.setHtml("".join(blocks))
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- links --------------------------------------------------------------------------------

    def citation_for(self, url: QUrl) -> Citation | None:
        """``cite:n`` (the latest answer) or ``cite:i/n`` (entry i) to its citation."""
        if url.scheme() != "cite":
            return None
        target = url.path() or url.toString().removeprefix("cite:")
        entry_index: int | None = None
        if "/" in target:
            first, _, target = target.partition("/")
            if not first.isdigit():
                return None
            entry_index = int(first)
        if not target.isdigit():
            return None
        number = int(target)
        answer: Answer | None
        if entry_index is None:
            answer = self.last_answer()
        elif 0 <= entry_index < len(self.entries):
            answer = self.entries[entry_index].answer
        else:
            answer = None
        if answer is None:
            return None
        for c in (*answer.citations, *answer.also_retrieved):
            if c.number == number:
                return c
        return None

    def toggle_unsupported(self, index: int) -> None:
        """Show or hide a withheld answer's model text (entry ``index``)."""
        if 0 <= index < len(self.entries) and self.entries[index].answer is not None:
            entry = self.entries[index]
            entry.revealed = not entry.revealed
            self.refresh()

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "reveal":
            target = url.path() or url.toString().removeprefix("reveal:")
            if target.isdigit():
                self.toggle_unsupported(int(target))
                return
        citation = self.citation_for(url)
        if citation is not None:
            self.citation_requested.emit(citation)
        else:
            # Never follow anything else (file:, http:, javascript:...).
            self.link_refused.emit(url.toString())

    def loadResource(self, type_: int, name: QUrl | str) -> object:
        return None  # no images or style sheets from anywhere: the transcript is self-contained


class ChatInput(QPlainTextEdit):
    """Enter sends, Shift+Enter inserts a newline."""

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatInput")
        self.setPlaceholderText("Ask a question about your documents…  (Enter sends)")
        self.setTabChangesFocus(True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)
