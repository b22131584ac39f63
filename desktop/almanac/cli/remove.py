"""``almanac remove``: remove files or folders from the index."""

from __future__ import annotations

import argparse
from pathlib import Path

from almanac.cli.common import EXIT_OK, KB_HELP, CliError, _kb


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("remove", help="remove files or folders from the index")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--kb", type=Path, help=KB_HELP)
    p.set_defaults(handler=_cmd_remove)


def _cmd_remove(args: argparse.Namespace) -> int:
    import sys
    import threading

    from almanac.core.indexing.ingest import posix
    from almanac.core.indexing.writer import IndexWriter
    from almanac.core.store.store import Store

    kb = _kb(args)
    store = Store.open_existing(kb)
    keys = [posix(p) for p in args.paths]

    def job(_cancel: threading.Event) -> int:
        return store.remove_under(keys)

    def waiting(message: str) -> None:
        # The app may be indexing: wait for it rather than fail (Ctrl+C gives up).
        print(f"almanac: {message} (Ctrl+C to give up)", file=sys.stderr, flush=True)

    # Through the knowledge base's writer like every other change: it waits for another process
    # updating the index, and repairs what a crashed write session left before writing.
    writer = IndexWriter(kb, on_crash=store.sweep_orphans)
    removed = writer.run("remove", job, on_wait=waiting)
    if removed == 0:
        raise CliError(
            "nothing to remove: no indexed document under " + ", ".join(map(str, args.paths))
        )
    print(f"removed {removed} document{'s' if removed != 1 else ''}")
    return EXIT_OK
