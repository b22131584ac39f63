"""The window a start shows at once, while the knowledge base and the embedder open.

Opening the embedder takes seconds (onnxruntime, the tokenizer, LanceDB), and on a first start
without an installed model cache the one-time int8 export takes about half a minute. Nothing of
that needs the main window, so this window appears first (Qt and this module only, well under a
second), says what is happening, and the main window takes its place and size when it is ready.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

__all__ = ["StartWindow"]

OPENING = "Opening your knowledge base…"
FIRST_START = (
    "Preparing the search model for its first use (once, about half a minute on a laptop)…"
)


class StartWindow(QWidget):
    def __init__(self, first_start: bool) -> None:
        super().__init__()
        self.setObjectName("startWindow")
        self.setWindowTitle("Almanac")
        self.setAccessibleName("Almanac is starting")
        self.resize(1280, 800)
        self.closed_by_user = False
        title = QLabel("Almanac")
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 2.2)
        font.setBold(True)
        title.setFont(font)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status = QLabel(FIRST_START if first_start else OPENING)
        self.status.setObjectName("startStatus")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setWordWrap(True)
        bar = QProgressBar()
        bar.setRange(0, 0)  # busy: the steps don't report fractions
        bar.setTextVisible(False)
        bar.setMaximumWidth(320)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(title)
        layout.addWidget(self.status)
        layout.addWidget(bar, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)

    def say(self, text: str) -> None:
        self.status.setText(text)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing it is how a user cancels a slow start; the caller checks this flag.
        self.closed_by_user = True
        event.accept()
