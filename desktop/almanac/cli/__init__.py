"""The command line: the same application layer as the desktop app, headless. One module per
command (``add_parser`` and the command itself); this one assembles the parser and runs one.

Exit codes: 0 ok, 1 failure (one-line message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from almanac import __version__
from almanac.cli import ask, evaluate, ingest, model, remove, search, status, watch
from almanac.cli.ask import AnswerDefaults, _print_answer_footer
from almanac.cli.common import EMBEDDER_BACKENDS, EXIT_FAILURE, EXIT_USAGE, CliError
from almanac.core.system.offline import enforce_offline_env


def main(argv: Sequence[str] | None = None, *, open_window: Callable[[], int] | None = None) -> int:
    """Run one command. ``open_window`` runs the bare command (the desktop window; given by
    almanac.launcher, since the command line does not import the UI); without it the bare command
    prints the usage."""
    # First, before any command imports a library that reads these at import time.
    enforce_offline_env()
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        if open_window is None:
            parser.print_usage(sys.stderr)
            return EXIT_USAGE
        return open_window()
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("almanac: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        _fail(str(exc))
    except Exception as exc:  # last resort: a one-line message, never a traceback
        from almanac.core.documents import DocumentError
        from almanac.core.embedding.embedding import EmbeddingError
        from almanac.core.indexing.writer_lock import WriterBusyError
        from almanac.core.llm.base import ModelError
        from almanac.core.store.store import StoreError

        known = (
            ModelError,
            DocumentError,
            EmbeddingError,
            StoreError,
            WriterBusyError,
            FileNotFoundError,
            ValueError,
        )
        _fail(str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}")
    return EXIT_FAILURE


def _fail(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"almanac: error: {first_line}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="almanac",
        description="Offline, document-grounded support assistant.",
    )
    parser.add_argument("--version", action="version", version=f"almanac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ingest.add_parser(sub)
    search.add_parser(sub)
    ask.add_parser(sub)
    model.add_parser(sub)
    status.add_parser(sub)
    remove.add_parser(sub)
    watch.add_parser(sub)
    evaluate.add_parser(sub)

    from almanac.finetune.cli_args import add_finetune_parser  # torch-free; imports nothing heavy

    add_finetune_parser(sub)
    return parser


__all__ = ["EMBEDDER_BACKENDS", "AnswerDefaults", "CliError", "_print_answer_footer", "main"]
