"""Window geometry and splitter positions, kept beside the settings file (``window.ini``).

Kept apart from ``settings.json`` on purpose: it is Qt's opaque state, written at every close, and
a damaged or foreign one must only cost the layout, never the user's settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter, QWidget

__all__ = ["WindowState"]


class WindowState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._qs = QSettings(str(path), QSettings.Format.IniFormat)

    def restore_geometry(self, window: QWidget) -> None:
        geometry = self._qs.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            window.restoreGeometry(geometry)

    def restore(self, window: QMainWindow, splitter: QSplitter) -> int:
        """Geometry and splitter sizes as they were; returns the source pane's last width."""
        geometry = self._qs.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            window.restoreGeometry(geometry)
        sizes = self._qs.value("splitter")
        if isinstance(sizes, QByteArray) and not sizes.isEmpty():
            splitter.restoreState(sizes)
        try:
            return max(0, int(str(self._qs.value("source_width", 0))))
        except ValueError:
            return 0

    def save(self, window: QMainWindow, splitter: QSplitter, source_width: int) -> None:
        self._qs.setValue("geometry", window.saveGeometry())
        self._qs.setValue("splitter", splitter.saveState())
        self._qs.setValue("source_width", int(source_width))
        self._qs.sync()
