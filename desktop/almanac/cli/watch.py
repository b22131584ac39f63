"""``almanac watch``: keep the index in sync with folders while running."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from almanac.cli.common import (
    _BACKEND_HELP,
    EMBEDDER_BACKENDS,
    EMBEDDER_HELP,
    EXIT_OK,
    KB_HELP,
    CliError,
    _embedding_model,
    _kb,
    _shown,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="keep the index in sync with folders while running")
    p.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    p.add_argument("--kb", type=Path, help=KB_HELP)
    p.add_argument(
        "--polling", action="store_true", help="poll instead of OS events (network drives)"
    )
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=EMBEDDER_HELP)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr")
    p.set_defaults(handler=_cmd_watch)


def _cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from almanac.app.services import build_services
    from almanac.core.indexing.sync import BatchResult, FolderSync

    for folder in args.folders:
        if not folder.is_dir():
            raise CliError(f"no such folder: {folder}")
    services = build_services(
        _kb(args), embedding_model=_embedding_model(args), embedder_backend=args.embedder
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()  # the main thread shuts down in order; a handler must not do the work

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    reported: dict[str, str] = {}  # path -> the failure already printed for it

    def on_batch(b: BatchResult) -> None:
        if b.changed or b.reconcile:  # else touched or saved unchanged: nothing to say
            label = "reconciled" if b.reconcile else "synced"
            print(
                f"{label}: added {b.added}, updated {b.updated}, removed {b.removed}, "
                f"failed {b.failed}; {b.chunks_embedded} chunks embedded in {b.seconds:.2f} s",
                flush=True,
            )
        # Each failed file once with its reason, not again at every reconciliation.
        for failure in b.failures:
            if reported.get(failure.path) != failure.message:
                reported[failure.path] = failure.message
                print(f"  error: {_shown(failure.path)}: {_shown(failure.message)}", flush=True)

    def on_error(message: str) -> None:
        # The sync's own failures (a full disk, another writer), once each; retried with back-off.
        if message:
            print(f"almanac: error: {_shown(message)}", file=sys.stderr, flush=True)
        else:
            print(
                "almanac: recovered: the index is being updated again", file=sys.stderr, flush=True
            )

    sync = FolderSync(
        services.ingestor,
        args.folders,
        polling=args.polling,
        on_batch=on_batch,
        on_error=on_error,
    )
    stopped = True
    try:
        sync.start()
        if not args.quiet:
            names = ", ".join(_shown(str(f)) for f in args.folders)
            print(f"watching {names} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        # SIGTERM must end the process within 2 s whatever it is doing: the ingest in progress is
        # cancelled, and one stuck in a slow step is abandoned (everything it committed is kept;
        # the next start reconciles the rest, as after a crash).
        stopped = sync.stop(timeout=1.5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.quiet:
        print("stopped", file=sys.stderr, flush=True)
    if not stopped:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)  # the sync thread can't be joined; interpreter shutdown could wait on it
    return EXIT_OK
