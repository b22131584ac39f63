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
    p = sub.add_parser("ingest", help="index files and folders (incremental)")
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
    from almanac.app.services import build_services

    for path in args.paths:
        if not path.exists() and not path.is_symlink():
            raise CliError(f"no such file or folder: {path}")
    services = build_services(
        _kb(args), embedding_model=_embedding_model(args), embedder_backend=args.embedder
    )
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
    return EXIT_OK
