"""The status bar's OCR line: the scan being read (page n of N, files waiting) and a Cancel button.

Scans are read in the ingestor's slow lane (core.indexing.ocr_lane), outside the index writer;
the lane reports progress on its own thread, and this widget shows it on the GUI thread. When a
scan is done (indexed or cancelled), ``file_done`` tells the window that the library changed:
the lane writes the document itself, after the batch that found it has long been announced.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

if TYPE_CHECKING:  # the lane's module reads documents (heavy imports): not before the window
    from almanac.core.indexing.ocr_lane import OcrLane, OcrProgress

__all__ = ["OcrStatus", "describe_ocr"]


def describe_ocr(p: OcrProgress) -> str:
    """``Reading scan manual.pdf by OCR: page 3 of 40 · 2 more waiting`` ("" when idle)."""
    if not p.current:
        return f"{p.files_waiting} scan(s) waiting for OCR" if p.files_waiting else ""
    text = f"Reading scan {Path(p.current).name} by OCR"
    if p.pages_total:
        text += f": page {min(p.pages_done + 1, p.pages_total)} of {p.pages_total}"
    if p.files_waiting:
        text += f" \u00b7 {p.files_waiting} more waiting"
    return text


class OcrStatus(QWidget):
    progressed = Signal(object)  # OcrProgress; emitted on the lane's thread, delivered queued
    file_done = Signal(str)  # the scan that was read (or cancelled)

    def __init__(self, lane: OcrLane, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ocrStatus")
        self.lane = lane
        self.label = QLabel()
        self.label.setAccessibleName("OCR progress")
        self.cancel_button = QPushButton("Cancel OCR")
        self.cancel_button.setToolTip(
            "Stop reading scans; they are not indexed (their previous version stays)"
        )
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.cancel_button)
        self._current = ""
        self.progressed.connect(self.show_progress)
        lane.on_progress = self.progressed.emit
        # Deleted with its window without detach(): the lane must not call into a dead object.
        self.destroyed.connect(lambda: _forget(lane))
        self.show_progress(lane.progress)

    def show_progress(self, p: OcrProgress) -> None:
        if self._current and p.current != self._current:
            self.file_done.emit(self._current)
        self._current = p.current
        if not p.current and not p.files_waiting:
            self.cancel_button.setEnabled(True)  # for the next scan
        text = describe_ocr(p)
        self.label.setText(text)
        self.setVisible(bool(text))

    def cancel(self) -> None:
        self.lane.cancel()
        self.label.setText("Cancelling OCR…")
        self.cancel_button.setEnabled(False)

    def detach(self) -> None:
        """Hear nothing more from the lane (the window is closing)."""
        if self.lane.on_progress == self.progressed.emit:
            self.lane.on_progress = None


def _forget(lane: OcrLane) -> None:
    lane.on_progress = None
