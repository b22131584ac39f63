"""``almanac ingest``: index files and folders (incremental)."""

from __future__ import annotations

import argparse
import json
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
    _ProgressPrinter,
    _shown,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ingest",
        help="index files and folders (incremental); naming a removed file or folder includes it "
        "again",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--kb", type=Path, help=KB_HELP)
    p.add_argument("--force", action="store_true", help="re-read files even if unchanged")
    p.add_argument(
        "--no-prune", action="store_true", help="keep documents that vanished from the folders"
    )
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=EMBEDDER_HELP)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_ingest)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from almanac.app.library import excluded_within, include_named
    from almanac.app.services import build_services
    from almanac.core.system.discovery import display_key, path_key

    for path in args.paths:
        if not path.exists() and not path.is_symlink():
            raise CliError(f"no such file or folder: {path}")
    services = build_services(
        _kb(args), embedding_model=_embedding_model(args), embedder_backend=args.embedder
    )
    # A removed file or folder named again is included again; removed documents that only lie
    # in a named folder stay out (a folder ingest is also how the index catches up with the disk).
    exclusions = services.ingestor.exclusions
    included = include_named(exclusions, args.paths)
    still_excluded = excluded_within(exclusions, args.paths)
    printer = _ProgressPrinter(sys.stderr, enabled=not args.quiet)
    report = services.ingestor.ingest(
        args.paths, progress=printer, prune=not args.no_prune, force=args.force
    )
    printer.finish()
    if args.json:
        print(
            json.dumps(
                {
                    "added": report.added,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "removed": report.removed,
                    "failed": [{"path": f.path, "error": f.message} for f in report.failed],
                    "chunks_written": report.chunks_written,
                    "chunks_embedded": report.chunks_embedded,
                    "chunks_reused": report.chunks_reused,
                    "seconds": round(report.seconds, 3),
                    "timings": {k: round(v, 3) for k, v in report.timings.items()},
                    "included_again": included,
                    "excluded": still_excluded,
                }
            )
        )
    else:
        rate = report.chunks_written / report.seconds if report.seconds > 0 else 0.0
        print(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"removed {report.removed}, failed {len(report.failed)}; "
            f"{report.chunks_written} chunks ({report.chunks_embedded} embedded, "
            f"{report.chunks_reused} reused) in {report.seconds:.1f} s ({rate:.1f} chunks/s)"
        )
        for failure in report.failed:
            print(f"  error: {_shown(failure.path)}: {_shown(failure.message)}")
        for key in included:
            print(f"  included again: {_shown(display_key(key))}")
    if still_excluded and not args.quiet:
        for path in args.paths:
            key = path_key(path)
            folder = next((k for k in still_excluded if key.startswith(k.rstrip("/") + "/")), None)
            if folder is not None:  # inside a removed folder
                print(
                    f"almanac: {_shown(str(path))} lies in the removed folder "
                    f"{_shown(display_key(folder))}: name that folder to include it again",
                    file=sys.stderr,
                )
        n = len(still_excluded)
        print(
            f"almanac: {n} removed file{'s' if n != 1 else ''} or folder{'s' if n != 1 else ''} "
            "left out (`almanac status` lists them; name one to include it again)",
            file=sys.stderr,
        )
    return EXIT_OK
