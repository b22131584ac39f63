"""The ``almanac`` command: with a command it is the command line; without one, the desktop window.

The one module that knows both front ends, so that neither imports the other (the import-linter
layers contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from almanac.cli import main as cli_main

    return cli_main(argv, open_window=open_window)


def open_window() -> int:
    # Imported only here: the command line never loads Qt.
    from almanac.ui.app import run

    return run()
