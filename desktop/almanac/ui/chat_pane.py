"""The chat pane: the model banner, a dismissable notice, the transcript, the answer actions and
the question box.

Its own widget so that the main window only wires it: the window connects the buttons and the
transcript's signals to what they do, and says what the banner and the notice show. The pane
keeps the one piece of state that belongs to it: which cause ("ingest", "model") the notice
on screen has, so that fixing that cause clears it and nothing else.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from almanac.ui.chat_view import ChatInput, Transcript
from almanac.ui.model_controller import NO_MODEL_TEXT

__all__ = ["ChatPane"]


class ChatPane(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chat")

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setStyleSheet(
            "#banner { background: #fff4ce; border: 1px solid #e6d08a; border-radius: 4px; }"
            "#banner QLabel { color: #5c4a00; }"
        )
        self.banner_label = QLabel(NO_MODEL_TEXT)
        self.banner_label.setWordWrap(True)
        self.add_model_button = QPushButton("Add model…")
        banner_row = QHBoxLayout(self.banner)
        banner_row.setContentsMargins(8, 4, 8, 4)
        banner_row.addWidget(self.banner_label, 1)
        banner_row.addWidget(self.add_model_button)

        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.PlainText)  # messages quote file names
        self.notice.setStyleSheet(
            "#notice { background: #fde7e9; color: #6e0b12; border-radius: 4px; padding: 4px; }"
        )
        self.notice.hide()
        self.notice_kind = ""
        # A notice can always be dismissed; the ones with a known cause also go by themselves
        # once that cause is gone (clear_notice).
        self.notice_close = QToolButton()
        self.notice_close.setText("\u2715")
        self.notice_close.setAutoRaise(True)
        self.notice_close.setToolTip("Dismiss")
        self.notice_close.setAccessibleName("Dismiss the notice")
        self.notice_close.clicked.connect(lambda: self.show_notice(""))
        self.notice_close.hide()
        notice_row = QHBoxLayout()
        notice_row.setSpacing(2)
        notice_row.addWidget(self.notice, 1)
        notice_row.addWidget(self.notice_close, 0, Qt.AlignmentFlag.AlignTop)

        self.transcript = Transcript()

        self.copy_button = QPushButton("Copy answer")
        self.regenerate_button = QPushButton("Regenerate")
        self.export_button = QPushButton("Export…")
        actions = QHBoxLayout()
        actions.addStretch(1)
        for b in (self.copy_button, self.regenerate_button, self.export_button):
            actions.addWidget(b)

        self.input = ChatInput()
        self.input.setFixedHeight(64)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        input_row.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.banner)
        layout.addLayout(notice_row)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(actions)
        layout.addLayout(input_row)

    def show_notice(self, text: str, kind: str = "") -> None:
        """``kind`` names the cause ("ingest", "model") so that fixing it clears the notice."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self.notice_close.setVisible(bool(text))
        self.notice_kind = kind if text else ""

    def clear_notice(self, kind: str) -> None:
        if self.notice_kind == kind:
            self.show_notice("")

    def show_banner(self, text: str) -> None:
        """The model banner: ``text`` replaces its words; empty hides it."""
        if text:
            self.banner_label.setText(text)
        self.banner.setVisible(bool(text))
