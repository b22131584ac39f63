"""Consistency checks on a knowledge base: what a crash or a bug must never leave behind."""

from __future__ import annotations

from collections import Counter

from almanac.core.records import DocumentStatus
from almanac.core.store.store import Store


def assert_consistent(store: Store) -> None:
    """No duplicate chunks, no orphans, every document fully present (all chunks) or absent."""
    docs = store.documents()
    rows = store.all_chunk_rows(["id", "doc_path", "ordinal"]).to_pylist()
    ids = Counter(r["id"] for r in rows)
    assert not [i for i, n in ids.items() if n > 1], "duplicate chunk ids"
    per_doc: dict[str, list[int]] = {}
    for r in rows:
        per_doc.setdefault(r["doc_path"], []).append(r["ordinal"])
    for path, ordinals in per_doc.items():
        # Even chunks whose row is missing (a crash between the two commits) are a whole document.
        assert sorted(ordinals) == list(range(len(ordinals))), f"partial or duplicated: {path}"
    for path, info in docs.items():
        expected = info.chunk_count if info.status is DocumentStatus.INDEXED else 0
        assert len(per_doc.get(path, [])) == expected, path
