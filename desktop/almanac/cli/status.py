"""``almanac status``: documents, chunks, per-file errors, scans still waiting for OCR (read in
the slow lane of the process indexing them, or by the next ingest if it stopped), and what was
removed but kept on disk (excluded until ``almanac ingest`` names it again)."""

from __future__ import annotations

import argparse
from pathlib import Path

from almanac.cli.common import EXIT_OK, KB_HELP, _json_line, _kb, _shown


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="documents, chunks and per-file errors")
    p.add_argument("--kb", type=Path, help=KB_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from almanac.core.indexing.exclusions import EXCLUSIONS_FILE, Exclusions
    from almanac.core.records import DocumentStatus
    from almanac.core.store.store import Store
    from almanac.core.system.discovery import display_key

    kb = _kb(args)
    store = Store.open_existing(kb)
    excluded = Exclusions(kb / EXCLUSIONS_FILE).keys()
    docs = sorted(store.documents().values(), key=lambda d: d.path)
    by_status: dict[str, int] = {}
    for doc in docs:
        by_status[doc.status.value] = by_status.get(doc.status.value, 0) + 1
    chunks = store.count_chunks()
    waiting = [d.path for d in docs if d.status is DocumentStatus.PENDING]
    if args.json:
        print(
            _json_line(
                {
                    "kb": str(kb),
                    "documents": len(docs),
                    "chunks": chunks,
                    "by_status": by_status,
                    "files": [
                        {
                            "path": d.path,
                            "kind": d.kind,
                            "status": d.status.value,
                            "error": d.error or None,
                            "chunks": d.chunk_count,
                            "size": d.size,
                            "indexed_at": d.indexed_at,
                        }
                        for d in docs
                    ],
                    "excluded": excluded,
                    "waiting_for_ocr": {"count": len(waiting), "paths": waiting},
                }
            )
        )
        return EXIT_OK
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
    print(f"Knowledge base: {_shown(str(kb))}")
    print(f"Documents: {len(docs)} ({counts}); chunks: {chunks}")
    for doc in docs:
        if doc.error:
            label = "error" if doc.status.value == "error" else "warning"
            print(f"  {label}: {_shown(doc.path)}: {_shown(doc.error)}")
    if waiting:
        print(
            f"Waiting for OCR: {len(waiting)} scanned document(s) (read in the background by "
            "the app, `almanac watch` or `almanac ingest`; searchable once read)"
        )
        for path in waiting:
            print(f"  waiting for OCR: {_shown(path)}")
    if excluded:
        print(
            f"Excluded: {len(excluded)} (removed but kept on disk; "
            "`almanac ingest PATH` includes one again)"
        )
        for key in excluded:
            print(f"  excluded: {_shown(display_key(key))}")
    return EXIT_OK
