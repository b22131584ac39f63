"""Render resources/icons/almanac.svg to PNGs (Qt's SVG renderer, offscreen).

    python packaging/render_icon.py [SIZE ...]      # default: 256

Writes resources/icons/almanac-<SIZE>.png next to the SVG, plus almanac.ico (Windows shortcut and
executable) and almanac.icns (macOS app) from the largest size; the bundle's desktop entry and the
PyInstaller build use them where an SVG isn't accepted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"


def render(sizes: list[int]) -> list[Path]:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "almanac.svg"))
    if not renderer.isValid():
        raise SystemExit(f"render_icon: {ICONS / 'almanac.svg'} is not a valid SVG")
    written: list[Path] = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        out = ICONS / f"almanac-{size}.png"
        if not image.save(str(out)):
            raise SystemExit(f"render_icon: could not write {out}")
        written.append(out)
        if size == max(sizes):
            for fmt in ("ico", "icns"):
                icon = ICONS / f"almanac.{fmt}"
                if not image.save(str(icon), fmt.upper().encode()):
                    raise SystemExit(f"render_icon: could not write {icon}")
                written.append(icon)
    del app
    return written


if __name__ == "__main__":
    for path in render([int(a) for a in sys.argv[1:]] or [256]):
        print(path)
