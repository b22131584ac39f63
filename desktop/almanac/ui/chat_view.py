"""The chat transcript and the input box.

The transcript is a QTextBrowser that never follows a link itself: it renders the conversation as
turns (the user's question in a tinted bubble, Almanac's answer under its name), citation chips
``[n]`` with a hover preview of the passage, and under each answer a row of source cards whose
snippet is centred on the sentence that matters. Everything shown from documents or the model is
escaped (``markdown_render``); the only links are our own schemes, handled here or by the window.

Colours come from the widget's palette when the HTML is built, so a theme switch re-renders
(``changeEvent``) instead of leaving dark-blue links on a dark background.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QHelpEvent,
    QKeyEvent,
    QPalette,
    QTextCursor,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextBrowser, QToolTip, QWidget

from almanac.app.chat_export import CITATION_DASH, UNSUPPORTED_LABEL, answer_markdown
from almanac.core.answering.citations import citation_location
from almanac.core.records import Answer, AnswerMode, Citation
from almanac.ui.markdown_render import render_answer_html, render_plain_html

__all__ = [
    "UNSUPPORTED_LABEL",
    "ChatInput",
    "Entry",
    "Transcript",
    "focus_snippet",
    "where",
]

_CITE_HREF = re.compile(r'href="cite:(\d+)"')
_CITE_LINK = re.compile(r'<a href="cite:(\d+)/(\d+)">\[\d+\]</a>')
SNIPPET_CHARS = 280
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_WORD = re.compile(r"\w{3,}")
# Words too common to say which sentence matters.
_STOP = frozenset(
    "the and for are was were with that this from have has had not but you your can will "  # noqa: SIM905
    "what when where which who how does did into than then them they their there these those "
    "its about after before only also more most such each other any all our out use used".split()
)


@dataclass(slots=True)
class Entry:
    role: str  # "user" | "assistant"
    text: str
    answer: Answer | None = None
    revealed: bool = False  # a withheld answer's model text is shown
    expanded: set[int] = field(default_factory=set)  # source cards shown in full


def where(c: Citation, root: str | None = None) -> str:
    """``faq.md, page 3 — Heading`` (relative to ``root`` when it is inside it)."""
    return citation_location(c.path, c.page, c.heading, root=root, dash=CITATION_DASH)


def _stem(word: str) -> str:
    # Enough to match "ports" with "port" and "expires" with "expire"; not a real stemmer.
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def focus_snippet(text: str, focus: str, limit: int = SNIPPET_CHARS) -> str:
    """About ``limit`` characters of ``text``: the run of whole sentences that matters most to
    ``focus`` (the answer sentences citing it, and the question), cut at word boundaries.

    A snippet that is simply the passage's first 240 characters stops right before the fact the
    user wants ("…find each other on UDP …"). Each sentence scores the focus words it holds,
    weighted by how rare they are in the passage (the topic words of a passage are in every
    sentence and say little), plus one for figures (ports, durations, limits)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    sentences = [(m.start(), m.end(), _words(m.group())) for m in _SENTENCE.finditer(flat)]
    wanted = _words(focus)
    if not sentences or not wanted:
        return _cut(flat, 0, limit)
    spread = {w: sum(1 for *_, ws in sentences if w in ws) for w in wanted}
    scores = []
    for start, end, ws in sentences:
        score = sum(1.0 / spread[w] for w in ws & wanted)
        if score and re.search(r"\d", flat[start:end]):
            score += 1.0
        scores.append(score)
    best = (0.0, 0, 0)  # (score, first sentence, last sentence)
    for a in range(len(sentences)):
        total = 0.0
        for b in range(a, len(sentences)):
            if sentences[b][1] - sentences[a][0] > limit and b > a:
                break
            total += scores[b]
            if total > best[0] + 1e-9:
                best = (total, a, b)
    if best[0] == 0:
        return _cut(flat, 0, limit)
    start = sentences[best[1]][0]
    span_end = sentences[best[2]][1]
    # Room left over goes before the run (context) but never past the passage's ends.
    slack = max(0, limit - (span_end - start))
    start = max(0, min(start - slack // 3, len(flat) - limit))
    return _cut(flat, start, limit)


def _cut(flat: str, start: int, limit: int) -> str:
    end = min(len(flat), start + limit)
    piece = flat[start:end]
    if start > 0:
        cut = piece.find(" ")
        piece = "\u2026 " + (piece[cut + 1 :] if 0 <= cut < 30 else piece)
    if end < len(flat):
        cut = piece.rfind(" ")
        piece = (piece[:cut] if cut > len(piece) - 30 else piece) + " \u2026"
    return piece


def _citing_sentences(answer: Answer, number: int) -> str:
    marker = re.compile(rf"[\[\uff3b][\d,\s]*\b{number}\b[\d,\s]*[\]\uff3d]")
    hits = [m.group() for m in _SENTENCE.finditer(answer.text) if marker.search(m.group())]
    return " ".join(hits)


def _mix(a: QColor, b: QColor, t: float) -> str:
    """``a`` blended ``t`` of the way towards ``b``, as #rrggbb."""
    r = round(a.red() + (b.red() - a.red()) * t)
    g = round(a.green() + (b.green() - a.green()) * t)
    bl = round(a.blue() + (b.blue() - a.blue()) * t)
    return f"#{r:02x}{g:02x}{bl:02x}"


@dataclass(frozen=True, slots=True)
class _Colours:
    text: str
    muted: str
    link: str
    chip: str
    user: str
    card: str
    warn_bg: str
    warn: str

    @classmethod
    def of(cls, palette: QPalette) -> _Colours:
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        link = palette.color(QPalette.ColorRole.Link)
        accent = palette.color(QPalette.ColorRole.Highlight)
        dark = base.lightness() < 128
        amber = QColor(255, 179, 0) if dark else QColor(191, 120, 0)
        return cls(
            text=text.name(),
            muted=_mix(text, base, 0.45),
            link=link.name(),
            chip=_mix(base, link, 0.18),
            user=_mix(base, accent, 0.16 if dark else 0.10),
            card=_mix(base, text, 0.06),
            warn_bg=_mix(base, amber, 0.14),
            warn=_mix(text, amber, 0.65),
        )


class Transcript(QTextBrowser):
    """Renders entries; ``cite:`` links become ``citation_requested``; other links do nothing."""

    citation_requested = Signal(object)  # Citation
    link_refused = Signal(str)
    regenerate_requested = Signal()
    copied = Signal(str)  # a status line for the window

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setAccessibleName("Conversation")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.document().setDocumentMargin(14)
        self.entries: list[Entry] = []
        self.welcome_html = ""
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
        self.refresh(stick_to_end=True)

    def set_welcome(self, body_html: str) -> None:
        """What an empty conversation shows (our own HTML, no document text)."""
        self.welcome_html = body_html
        self.refresh()

    def add_user(self, text: str) -> None:
        self.entries.append(Entry("user", text))
        self.refresh(stick_to_end=True)

    def start_answer(self) -> None:
        self._streaming = ""
        self.refresh(stick_to_end=True)

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

    def to_html(self) -> str:
        c = _Colours.of(self.palette())
        style = (
            "<style>"
            f"a {{ color: {c.link}; text-decoration: none; }}"
            f".who {{ font-weight: 600; color: {c.muted}; }}"
            f".muted {{ color: {c.muted}; }}"
            f".warn {{ color: {c.warn}; }}"
            f".chip {{ background-color: {c.chip}; color: {c.link}; font-weight: 600; }}"
            "</style>"
        )
        blocks = [style]
        if not self.entries and self._streaming is None:
            blocks.append(self.welcome_html)
        last_answer = max((i for i, e in enumerate(self.entries) if e.answer), default=-1)
        for i, e in enumerate(self.entries):
            if e.role == "user":
                blocks.append(_user_html(e.text, c))
            elif e.answer is not None:
                body = answer_html(i, e.answer, e.revealed, c, e.expanded)
                actions = f'<a href="copy:{i}">Copy</a>'
                if i == last_answer:
                    actions += f' &nbsp;\u00b7&nbsp; <a href="regenerate:{i}">Regenerate</a>'
                blocks.append(
                    _assistant_html(body + f'<p class="muted"><small>{actions}</small></p>', c)
                )
            else:
                blocks.append(
                    _assistant_html(f'<div class="warn">{render_plain_html(e.text)}</div>', c)
                )
        if self._streaming is not None:
            shown = (
                render_plain_html(self._streaming)
                if self._streaming
                else ('<p class="muted">Searching your documents\u2026</p>')
            )
            blocks.append(_assistant_html(shown, c))
        return "".join(blocks)

    def refresh(self, stick_to_end: bool = False) -> None:
        # Streaming must not yank the view: follow the end only when the user is already there.
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 8
        previous = bar.value()
        self.setHtml(self.to_html())
        bar.setValue(bar.maximum() if (stick_to_end or at_end) else previous)

    @contextlib.contextmanager
    def keeping_place(self) -> Iterator[None]:
        """Keep the text at the top of the view there while the width changes (the source pane
        opening or closing reflows every paragraph); at the end stays at the end."""
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 8
        position = self.cursorForPosition(QPoint(4, 4)).position()
        yield
        if at_end:
            bar.setValue(bar.maximum())
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(min(position, self.document().characterCount() - 1))
        bar.setValue(bar.value() + self.cursorRect(cursor).top() - 4)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.refresh()

    # -- links --------------------------------------------------------------------------------

    def citation_for(self, url: QUrl) -> Citation | None:
        """``cite:n`` (the latest answer) or ``cite:i/n`` (entry i) to its citation."""
        if url.scheme() not in ("cite", "more"):
            return None
        target = url.path() or url.toString().split(":", 1)[-1]
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

    def toggle_card(self, index: int, number: int) -> None:
        if 0 <= index < len(self.entries):
            expanded = self.entries[index].expanded
            expanded.symmetric_difference_update({number})
            self.refresh()

    def copy_entry(self, index: int) -> None:
        if 0 <= index < len(self.entries) and self.entries[index].answer is not None:
            answer = self.entries[index].answer
            assert answer is not None
            QGuiApplication.clipboard().setText(answer_markdown(answer))
            self.copied.emit("Answer copied with its sources")

    def _on_anchor(self, url: QUrl) -> None:
        scheme = url.scheme()
        target = url.path() or url.toString().split(":", 1)[-1]
        if scheme == "reveal" and target.isdigit():
            self.toggle_unsupported(int(target))
            return
        if scheme == "copy" and target.isdigit():
            self.copy_entry(int(target))
            return
        if scheme == "regenerate":
            self.regenerate_requested.emit()
            return
        if scheme == "more":
            first, _, second = target.partition("/")
            if first.isdigit() and second.isdigit():
                self.toggle_card(int(first), int(second))
                return
        citation = self.citation_for(url)
        if citation is not None:
            self.citation_requested.emit(citation)
        else:
            # Never follow anything else (file:, http:, javascript:...).
            self.link_refused.emit(url.toString())

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            preview = self.preview_at(event.pos())
            if preview:
                QToolTip.showText(event.globalPos(), preview, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)

    def preview_at(self, pos: QPoint) -> str:
        """The hover preview of a citation chip under ``pos`` (viewport coordinates): escaped."""
        anchor = self.anchorAt(pos)
        if not anchor.startswith("cite:"):
            return ""
        citation = self.citation_for(QUrl(anchor))
        if citation is None:
            return ""
        snippet = focus_snippet(citation.text, "", 400)
        return (
            f"<p><b>{html.escape(where(citation))}</b></p>"
            f"<p>{html.escape(snippet)}</p><p><i>Click to open the source</i></p>"
        )

    def loadResource(self, type_: int, name: QUrl | str) -> object:
        return None  # no images or style sheets from anywhere: the transcript is self-contained


def _user_html(text: str, c: _Colours) -> str:
    return (
        '<table width="100%" cellspacing="0" cellpadding="0" style="margin-top: 14px;">'
        '<tr><td width="18%"></td>'
        f'<td bgcolor="{c.user}" style="padding: 10px;">'
        f'<span class="who">You</span>{render_plain_html(text)}</td></tr></table>'
    )


def _assistant_html(body: str, c: _Colours) -> str:
    return (
        '<table width="100%" cellspacing="0" cellpadding="0" style="margin-top: 14px;">'
        f'<tr><td style="padding: 4px;"><span class="who">Almanac</span>{body}</td></tr></table>'
    )


def _chips(body: str) -> str:
    # Markers become chips: " 1 " on a tinted background reads as a button, "[1]" as text.
    return _CITE_LINK.sub(
        lambda m: (
            f'<a href="cite:{m.group(1)}/{m.group(2)}"><span class="chip">'
            f"&nbsp;{m.group(2)}&nbsp;</span></a>"
        ),
        body,
    )


def _cards_html(
    index: int,
    title: str,
    answer: Answer,
    citations: tuple[Citation, ...],
    c: _Colours,
    expanded: set[int],
) -> str:
    """Source cards, two to a row: chip, file and page, heading, a snippet centred on what
    matters, and "more" to see the whole passage."""
    cells: list[str] = []
    for cit in citations:
        focus = _citing_sentences(answer, cit.number) + " " + answer.question
        full = cit.number in expanded
        text = " ".join(cit.text.split()) if full else focus_snippet(cit.text, focus)
        toggle = ""
        if full or text != " ".join(cit.text.split()):
            toggle = f' <a href="more:{index}/{cit.number}">{"less" if full else "more"}</a>'
        place = html.escape(citation_location(cit.path, cit.page))  # the heading: next line
        heading = (
            f'<br><span class="muted">{html.escape(cit.heading)}</span>' if cit.heading else ""
        )
        cells.append(
            f'<td bgcolor="{c.card}" width="50%" style="padding: 8px;" valign="top">'
            f'<a href="cite:{index}/{cit.number}"><span class="chip">&nbsp;{cit.number}&nbsp;'
            f'</span></a> <a href="cite:{index}/{cit.number}"><b>{place}</b></a>{heading}'
            f"<br><small>{html.escape(text)}{toggle}</small></td>"
        )
    rows = []
    for k in range(0, len(cells), 2):
        pair = cells[k : k + 2]
        if len(pair) == 1:
            pair.append('<td width="50%"></td>')
        rows.append("<tr>" + "".join(pair) + "</tr>")
    return (
        f'<p class="muted" style="margin-top: 10px;"><small><b>{title}</b></small></p>'
        f'<table width="100%" cellspacing="6" cellpadding="0">{"".join(rows)}</table>'
    )


def _mark_unsupported(body: str, sentences: tuple[str, ...], c: _Colours) -> str:
    # Per-sentence grounding: a sentence the passages don't support is underlined in amber where it
    # stands; sentences the renderer changed (Markdown) are still listed below the answer.
    for s in sentences:
        escaped = html.escape(s.strip(), quote=False)
        if escaped and escaped in body:
            body = body.replace(
                escaped,
                f'<span style="background-color: {c.warn_bg};" title="Not supported by the '
                f'cited passages">{escaped}</span>',
                1,
            )
    return body


def _withheld_html(index: int, answer: Answer, revealed: bool, c: _Colours, exp: set[int]) -> str:
    """The refusal, the passages, and the model's own text only on request, labelled."""
    first = answer.text.strip().splitlines()[0] if answer.text.strip() else ""
    parts = [
        f'<table width="100%" cellspacing="0" cellpadding="0"><tr>'
        f'<td bgcolor="{c.warn_bg}" style="padding: 10px;">'
        f'<span class="warn"><b>\u26a0 Not found in your documents</b></span>'
        f"{render_plain_html(first)}"
    ]
    if revealed:
        parts.append(
            f'<p class="warn"><b>{UNSUPPORTED_LABEL}</b> '
            f"<small>(the model's answer, withheld: check it against the passages)</small></p>"
            f'<div class="muted">{render_plain_html(answer.unsupported_text)}</div>'
            f'<p><small><a href="reveal:{index}">Hide it</a></small></p>'
        )
    else:
        parts.append(
            f'<p class="muted"><small><a href="reveal:{index}">Show the model\'s answer</a> '
            f"({UNSUPPORTED_LABEL.lower()})</small></p>"
        )
    parts.append("</td></tr></table>")
    if answer.citations:
        parts.append(_cards_html(index, "Closest passages", answer, answer.citations, c, exp))
    if answer.stopped:
        parts.append('<p class="muted">(stopped)</p>')
    return "".join(parts)


def answer_html(
    index: int,
    answer: Answer,
    revealed: bool = False,
    colours: _Colours | None = None,
    expanded: set[int] | None = None,
) -> str:
    """One answer: its text with chips for [n], then source cards, also-retrieved and notes."""
    c = colours or _Colours.of(QPalette())
    exp = expanded if expanded is not None else set()
    numbers = {x.number for x in answer.citations} | {x.number for x in answer.also_retrieved}
    if answer.withheld:
        return _withheld_html(index, answer, revealed, c, exp)
    if answer.mode is AnswerMode.SOURCES_ONLY:
        # The text repeats each passage on one line, plus a "no model" hint the banner already
        # gives: show its first line, then the passages as cards.
        intro = answer.text.strip().splitlines()[0] if answer.text.strip() else ""
        body = render_plain_html(intro)
    else:
        body = render_answer_html(answer.text, numbers)
        body = _mark_unsupported(body, answer.unsupported_sentences, c)
    # Tie each marker to this answer so that clicking an old answer opens its own passage.
    body = _chips(_CITE_HREF.sub(lambda m: f'href="cite:{index}/{m.group(1)}"', body))
    parts = [body]
    if answer.stopped:
        parts.append('<p class="muted">(stopped)</p>')
    if answer.mode is AnswerMode.GENERAL:
        parts.append(
            '<p class="warn"><small>\u26a0 General knowledge, not from your documents.</small></p>'
        )
    if answer.unsupported_sentences:
        listed = "".join(f"<li>{html.escape(s)}</li>" for s in answer.unsupported_sentences)
        parts.append(
            '<div class="warn"><small>\u26a0 Not supported by the cited passages:</small>'
            f"<ul>{listed}</ul></div>"
        )
    if answer.citations:
        title = "Passages" if answer.mode is AnswerMode.SOURCES_ONLY else "Sources"
        parts.append(_cards_html(index, title, answer, answer.citations, c, exp))
    if answer.also_retrieved:
        also = answer.also_retrieved
        parts.append(_cards_html(index, "Also retrieved (not cited)", answer, also, c, exp))
    return "".join(parts)


class ChatInput(QPlainTextEdit):
    """Enter sends, Shift+Enter inserts a newline."""

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatInput")
        self.setAccessibleName("Question")
        self.setPlaceholderText("Ask a question about your documents\u2026  (Enter sends)")
        self.setTabChangesFocus(True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)
