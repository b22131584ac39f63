"""Light, dark, or the system's: one palette for the whole app, applied at start and on change.

Widgets that build their content from palette colours (the chat transcript) re-render on the
palette change Qt sends them, so what is on screen follows a switch, links included. "system"
follows the platform's colour scheme where Qt knows it (Qt 6.5+), also when it changes while the
app runs, and otherwise keeps the palette the platform gave at start-up.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["THEMES", "apply_theme", "dark_palette"]

THEMES = ("system", "light", "dark")
_SYSTEM_PALETTE: list[QPalette] = []
_STATE = {"theme": "system", "following": False}


def apply_theme(theme: str) -> None:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if not _SYSTEM_PALETTE:
        _SYSTEM_PALETTE.append(QPalette(app.palette()))
    _STATE["theme"] = theme
    if not _STATE["following"]:
        _STATE["following"] = True
        app.styleHints().colorSchemeChanged.connect(lambda _scheme: _refresh())
    _refresh()


def _refresh() -> None:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    theme = _STATE["theme"]
    if theme == "system":
        scheme = app.styleHints().colorScheme()
        platform_dark = _SYSTEM_PALETTE[0].color(QPalette.ColorRole.Window).lightness() < 128
        # The platform says dark but handed us a light palette (Fusion on many Linux desktops).
        theme = "dark" if scheme == Qt.ColorScheme.Dark and not platform_dark else "system"
    if theme == "dark":
        app.setPalette(dark_palette())
    elif theme == "light":
        app.setPalette(app.style().standardPalette())
    else:
        app.setPalette(_SYSTEM_PALETTE[0])


def dark_palette() -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    base, window, text = QColor(30, 31, 34), QColor(43, 45, 48), QColor(223, 225, 229)
    for r, c in (
        (role.Window, window),
        (role.WindowText, text),
        (role.Base, base),
        (role.AlternateBase, window),
        (role.ToolTipBase, window),
        (role.ToolTipText, text),
        (role.Text, text),
        (role.Button, window),
        (role.ButtonText, text),
        (role.BrightText, QColor(255, 110, 110)),
        (role.Link, QColor(110, 170, 255)),
        (role.Highlight, QColor(53, 116, 240)),
        (role.HighlightedText, QColor(255, 255, 255)),
        (role.PlaceholderText, QColor(140, 143, 148)),
    ):
        p.setColor(r, c)
    p.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor(120, 120, 120))
    p.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor(120, 120, 120))
    return p
