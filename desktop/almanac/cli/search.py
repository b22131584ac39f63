"""``almanac search``: hybrid search of the knowledge base."""

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
    EXIT_USAGE,
    KB_HELP,
    CliError,
    _date,
    _embedding_model,
    _json_line,
    _kb,
    _shown,
)
from almanac.core.records import SearchFilters, SearchResult


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="hybrid search of the knowledge base")
    p.add_argument("query", nargs="?", help="the question or keywords")
    p.add_argument("--kb", type=Path, help=KB_HELP)
    p.add_argument("-k", type=int, default=5, help="number of results (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--jsonl", action="store_true", help='batch: read {"id","text"} lines on stdin')
    p.add_argument("--path", help="only documents under this folder or file")
    p.add_argument("--type", help="only these file types, comma-separated (pdf,md,docx,...)")
    p.add_argument("--since", type=_date, help="only documents modified on or after YYYY-MM-DD")
    p.add_argument("--until", type=_date, help="only documents modified before YYYY-MM-DD")
    p.add_argument("--floor", type=float, help="relevance floor (cosine similarity)")
    p.add_argument("--embedding-model", type=Path, metavar="DIR", help=EMBEDDER_HELP)
    p.add_argument("--embedder", choices=EMBEDDER_BACKENDS, help=_BACKEND_HELP)
    p.set_defaults(handler=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from almanac.app.services import build_services
    from almanac.core.answering.citations import citation_location

    if args.k < 1:
        print("almanac search: error: -k must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.jsonl == bool(args.query):
        print("almanac search: error: give a QUERY or --jsonl (not both)", file=sys.stderr)
        return EXIT_USAGE
    kb = _kb(args)
    from almanac.core.store.store import read_meta

    read_meta(kb)  # fail fast, before loading the embedder, when there is no knowledge base
    filters = SearchFilters(
        path_prefix=str(Path(args.path).absolute().as_posix()) if args.path else None,
        kinds=tuple(t.strip() for t in args.type.split(",") if t.strip()) if args.type else (),
        modified_after=args.since,
        modified_before=args.until,
    )
    searcher = build_services(
        kb, embedding_model=_embedding_model(args), embedder_backend=args.embedder
    ).searcher
    if args.jsonl:
        for lineno, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                qid, text = item["id"], str(item["text"])
            except (ValueError, KeyError, TypeError) as exc:
                raise CliError(
                    f'stdin line {lineno}: expected {{"id": ..., "text": ...}} ({exc})'
                ) from exc
            result = searcher.search(text, args.k, filters, floor=args.floor)
            print(_json_line({"id": qid, **_result_json(result)}), flush=True)
        return EXIT_OK
    result = searcher.search(args.query, args.k, filters, floor=args.floor)
    if args.json:
        print(_json_line({"query": result.query, **_result_json(result)}))
        return EXIT_OK
    if not result.relevant:
        best = (
            ""
            if result.best_similarity is None
            else f" (best similarity {result.best_similarity:.2f})"
        )
        print(f"Nothing relevant found in your documents{best}.")
        return EXIT_OK
    for i, hit in enumerate(result.hits, 1):
        where = _shown(citation_location(hit.path, hit.page, hit.heading, full_path=True))
        sim = f", similarity {hit.vector_score:.2f}" if hit.vector_score is not None else ""
        print(f"{i}. {where}  [score {hit.score:.4f}{sim}]")
        snippet = " ".join(hit.text.split())
        print(f"   {_shown(snippet[:300])}{'...' if len(snippet) > 300 else ''}")
    return EXIT_OK


def _result_json(result: SearchResult) -> dict[str, object]:
    return {
        "relevant": result.relevant,
        "best_similarity": result.best_similarity,
        "hits": [hit.to_json() for hit in result.hits],
    }
