"""The chat as turns: citation chips with an escaped hover preview, source cards whose snippet is
centred on the sentence that matters, withheld answers that look different, per-turn copy with
sources, a streaming answer that leaves the reader where they are, and export's file name."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QUrl
from PySide6.QtWidgets import QApplication

from almanac.app.chat_export import answer_markdown, conversation_markdown, export_file_name
from almanac.core.answering.answer import NOT_FOUND_TEXT, PASSAGES_INTRO
from almanac.core.records import Answer, AnswerMode, Citation
from almanac.ui.chat_view import SNIPPET_CHARS, Entry, Transcript, focus_snippet

FILLER = "Northwind Sync keeps folders in step across devices on the same network. " * 4
KEY = "Devices find each other on UDP port 47310 and transfer files over TCP port 47311."
PASSAGE = FILLER + KEY + " " + FILLER


def _answer(**changes: object) -> Answer:
    cited = Citation(1, "/docs/manual.pdf", 8, 0, 60, "LAN sync <ports>", 0.8, PASSAGE)
    fields: dict[str, object] = {
        "question": "Which ports does LAN sync use?",
        "text": "LAN sync uses UDP port 47310 and TCP port 47311 [1].",
        "mode": AnswerMode.MODEL,
        "citations": (cited,),
        "also_retrieved": (),
        "grounded": True,
    }
    fields.update(changes)
    return Answer(**fields)  # type: ignore[arg-type]


def test_snippet_is_centred_on_the_sentence_that_matters() -> None:
    snippet = focus_snippet(PASSAGE, "LAN sync uses UDP port 47310 [1]. Which ports?")
    assert "47310" in snippet and "47311" in snippet
    assert snippet.startswith("\u2026") and snippet.endswith("\u2026")
    assert len(snippet) <= SNIPPET_CHARS + 4  # the ellipses
    # Nothing to match: the passage's beginning, cut at a word.
    plain = focus_snippet(PASSAGE, "")
    assert plain.startswith("Northwind") and "47310" not in plain
    assert focus_snippet("Short passage.", "anything") == "Short passage."


def test_snippet_does_not_stop_before_the_fact_the_question_asks_for() -> None:
    # The sample manual's LAN sync passage: its topic words (LAN, sync, network) are in every
    # sentence; the ports sentence is what "which ports" asks for.
    passage = (
        "LAN sync downloads files directly from other computers of your team on the same local "
        "network instead of from the internet. It is turned on by default and can be turned off "
        "in Settings > Network > LAN sync. Computers find each other on UDP port 47310 and "
        "transfer data over TCP port 47311. Allow both ports in your local firewall. 6.3 Proxies "
        "and firewalls By default the client uses the proxy settings of the operating system."
    )
    snippet = focus_snippet(passage, "Which network ports does LAN sync use?")
    assert "UDP port 47310 and transfer data over TCP port 47311." in snippet


def test_answer_turn_has_chips_cards_and_an_escaped_preview(qtbot) -> None:
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.resize(700, 500)
    transcript.show()
    answer = _answer()
    transcript.set_entries(
        [Entry("user", answer.question), Entry("assistant", answer.text, answer)]
    )
    shown = transcript.toPlainText()
    assert "manual.pdf, page 8" in shown and "LAN sync <ports>" in shown
    assert "47310 and transfer files over TCP port 47311" in shown  # the card's snippet
    html = transcript.toHtml()
    assert "<ports>" not in html  # the heading is document text: escaped
    # The card expands to the whole passage and back.
    transcript.anchorClicked.emit(QUrl("more:1/1"))
    assert " ".join(PASSAGE.split()) in " ".join(transcript.toPlainText().split())
    transcript.anchorClicked.emit(QUrl("more:1/1"))
    assert " ".join(PASSAGE.split()) not in " ".join(transcript.toPlainText().split())
    # Hovering a chip previews its passage (escaped); the chip opens it.
    chip = transcript.document().find("1")
    while not chip.isNull() and not chip.charFormat().anchorHref().startswith("cite:"):
        chip = transcript.document().find("1", chip)
    assert not chip.isNull()
    point = transcript.cursorRect(chip).center()
    preview = transcript.preview_at(point)
    assert "manual.pdf" in preview and "LAN sync &lt;ports&gt;" in preview
    assert transcript.preview_at(QPoint(1, 1)) == ""
    with qtbot.waitSignal(transcript.citation_requested) as blocker:
        transcript.anchorClicked.emit(QUrl(chip.charFormat().anchorHref()))
    assert blocker.args[0].page == 8


def test_withheld_answer_looks_different_from_a_supported_one(qtbot) -> None:
    transcript = Transcript()
    qtbot.addWidget(transcript)
    supported = _answer()
    withheld = _answer(
        text=f"{NOT_FOUND_TEXT}\n\n{PASSAGES_INTRO}\n\n[1] manual.pdf: ...",
        mode=AnswerMode.NOT_FOUND,
        unsupported_text="Port 8080 [1].",
    )
    transcript.set_entries([Entry("assistant", supported.text, supported)])
    plain_supported = transcript.toPlainText()
    transcript.set_entries([Entry("assistant", withheld.text, withheld)])
    plain_withheld = transcript.toPlainText()
    assert "Not found in your documents" in plain_withheld
    assert "Not found in your documents" not in plain_supported
    assert "Closest passages" in plain_withheld and "Sources" in plain_supported
    assert "8080" not in plain_withheld


def test_unsupported_sentences_are_marked_and_copy_carries_sources(qtbot) -> None:
    transcript = Transcript()
    qtbot.addWidget(transcript)
    answer = _answer(
        text="LAN sync uses UDP port 47310 [1]. It also needs port 9 open.",
        grounded=False,
        unsupported_sentences=("It also needs port 9 open.",),
    )
    transcript.set_entries(
        [Entry("user", answer.question), Entry("assistant", answer.text, answer)]
    )
    assert "Not supported by the cited passages" in transcript.toPlainText()
    assert 'title="Not supported by the cited passages"' in transcript.to_html()
    transcript.anchorClicked.emit(QUrl("copy:1"))
    copied = QApplication.clipboard().text()
    assert copied == answer_markdown(answer)
    assert "[1] manual.pdf, page 8" in copied and "Warning: not supported" in copied


def test_streaming_leaves_the_reader_where_they_are(qtbot) -> None:
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.resize(500, 300)
    transcript.show()
    answer = _answer()
    entries = [Entry("user", f"question {i}") for i in range(30)]
    entries.append(Entry("assistant", answer.text, answer))
    transcript.set_entries(entries)
    bar = transcript.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()  # a chat opens at its end
    transcript.start_answer()
    bar.setValue(0)  # the reader scrolls up to an older turn
    for word in ("Devices ", "find ", "each ", "other."):
        transcript.append_token(word)
        transcript.refresh()
    assert bar.value() == 0
    bar.setValue(bar.maximum())  # back at the end: the answer is followed as it grows
    transcript.append_token(" More text. " * 20)
    transcript.refresh()
    assert bar.value() == bar.maximum()
    transcript.stop_rendering()


def test_export_names_and_markdown() -> None:
    assert export_file_name("How do I reset my code?") == "How do I reset my code.md"
    assert export_file_name("a/b\\c:*?") == "a b c.md"
    assert export_file_name("???") == "conversation.md"
    long = export_file_name("word " * 40)
    assert len(long) <= 63 and long.endswith("word.md")
    withheld = _answer(
        mode=AnswerMode.NOT_FOUND, text=NOT_FOUND_TEXT, unsupported_text="Port 8080."
    )
    text = conversation_markdown(
        "Ports", [Entry("user", "Which ports?"), Entry("assistant", "", withheld)]
    )
    assert text.startswith("# Ports\n")
    assert "withheld" in text and "> Port 8080." in text and "[1] manual.pdf, page 8" in text
