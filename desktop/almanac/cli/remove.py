"""``almanac remove``: remove files or folders from the index; they stay on disk and out of the
index (a folder ingest, ``almanac watch``, the app's live sync) until ``almanac ingest`` names them
again."""

from __future__ import annotations

import argparse
from pathlib import Path

from almanac.cli.common import EXIT_OK, KB_HELP, CliError, _kb


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "remove",
        help="remove files or folders from the index (kept on disk, excluded until ingested again)",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--kb", type=Path, help=KB_HELP)
    p.set_defaults(handler=_cmd_remove)


def _cmd_remove(args: argparse.Namespace) -> int:
    import sys

    from almanac.app.library import IndexEditor, remove_documents
    from almanac.core.system.discovery import path_key

    # The app's remove: out of the index and excluded, without loading the embedder.
    index = IndexEditor(_kb(args))

    def waiting(message: str) -> None:
        # The app may be indexing: wait for it rather than fail (Ctrl+C gives up).
        print(f"almanac: {message} (Ctrl+C to give up)", file=sys.stderr, flush=True)

    removed = remove_documents(index, [path_key(p) for p in args.paths], on_wait=waiting)
    if removed == 0:
        raise CliError(
            "nothing to remove: no indexed document under " + ", ".join(map(str, args.paths))
        )
    print(
        f"removed {removed} document{'s' if removed != 1 else ''} "
        "(kept on disk; `almanac ingest PATH` includes them again)"
    )
    return EXIT_OK
