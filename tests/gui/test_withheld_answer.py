"""A withheld answer in the chat: the refusal and the passages, the model's text only on request,
labelled "Unsupported by your documents"."""

from __future__ import annotations

from PySide6.QtCore import QUrl

from almanac.core.answering.answer import NOT_FOUND_TEXT, PASSAGES_INTRO
from almanac.core.records import Answer, AnswerMode, Citation
from almanac.ui.chat_view import UNSUPPORTED_LABEL, Entry, Transcript

INVENTED = "Error E-1042 is a Microsoft Azure security vulnerability [1]."


def _withheld() -> Answer:
    passage = Citation(1, "/docs/faq.md", None, 0, 60, "Passwords", 0.6, "The link lasts 30 min.")
    return Answer(
        question="What does error E-1042 mean?",
        text=f"{NOT_FOUND_TEXT}\n\n{PASSAGES_INTRO}\n\n[1] faq.md - Passwords: {passage.text}",
        mode=AnswerMode.NOT_FOUND,
        citations=(passage,),
        also_retrieved=(),
        grounded=True,
        unsupported_text=INVENTED,
    )


def test_withheld_answer_shows_refusal_and_passages_and_reveals_on_request(qtbot) -> None:
    transcript = Transcript()
    qtbot.addWidget(transcript)
    answer = _withheld()
    transcript.set_entries(
        [Entry("user", answer.question), Entry("assistant", answer.text, answer)]
    )
    shown = transcript.toPlainText()
    assert NOT_FOUND_TEXT in shown and "The link lasts 30 min." in shown
    assert "Azure" not in shown
    assert "Show the model's answer" in shown

    transcript.anchorClicked.emit(QUrl("reveal:1"))
    shown = transcript.toPlainText()
    assert UNSUPPORTED_LABEL in shown and "Azure" in shown

    transcript.anchorClicked.emit(QUrl("reveal:1"))
    assert "Azure" not in transcript.toPlainText()
    # A passage link of the withheld answer still opens its passage.
    with qtbot.waitSignal(transcript.citation_requested) as blocker:
        transcript.anchorClicked.emit(QUrl("cite:1/1"))
    assert blocker.args[0].path == "/docs/faq.md"
