"""Retrieval evaluation: labelled datasets in, ranking metrics out.

Three dataset shapes are read: BEIR (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), SQuAD v1.1
(each paragraph a document, each question's paragraph relevant) and a folder of files with a CSV of
questions and their source documents (Docugami style, names or globs like ``*2023 Q3 AAPL*``).

Ranking is judged at the document level: the searcher returns chunks, and each document counts at
the rank of its first chunk. Ranking uses no relevance floor; the floor is judged separately, as the
share of queries for which the searcher would say "nothing relevant".
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from almanac.core.retrieval.retrieval import Searcher

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class EvalDoc:
    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class EvalQuery:
    id: str
    text: str
    relevant: frozenset[str]


@dataclass(frozen=True, slots=True)
class EvalSet:
    """A labelled set: documents as records (``documents``) or as files in ``folder``."""

    name: str
    documents: list[EvalDoc] | None
    folder: Path | None
    queries: list[EvalQuery]
    skipped_queries: int = 0  # questions dropped because no document matched their labels


# -- loaders --------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}: line {lineno}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object")
            yield row


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")


def load_beir(directory: Path, split: str = "train", limit_queries: int | None = None) -> EvalSet:
    """A BEIR folder. Only queries with positive qrels in ``split`` are kept, in qrels order."""
    directory = Path(directory)
    corpus_path = directory / "corpus.jsonl"
    queries_path = directory / "queries.jsonl"
    qrels_path = directory / "qrels" / f"{split}.tsv"
    for path, what in (
        (corpus_path, "BEIR corpus"),
        (queries_path, "BEIR queries"),
        (qrels_path, f"BEIR qrels for split {split!r}"),
    ):
        _require_file(path, what)
    qrels: dict[str, set[str]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise ValueError(
                    f"{qrels_path}: line {lineno}: expected query-id, corpus-id, score"
                )
            try:
                score = int(row[2])
            except ValueError as exc:
                raise ValueError(f"{qrels_path}: line {lineno}: score is not a number") from exc
            if score > 0:
                qrels.setdefault(row[0], set()).add(row[1])
    texts: dict[str, str] = {}
    for item in _read_jsonl(queries_path):
        texts[str(item.get("_id"))] = str(item.get("text") or "")
    documents = [
        EvalDoc(str(d["_id"]), str(d.get("title") or "").strip(), str(d.get("text") or ""))
        for d in _read_jsonl(corpus_path)
        if "_id" in d
    ]
    queries: list[EvalQuery] = []
    for qid, relevant in qrels.items():
        text = texts.get(qid, "").strip()
        if not text:
            continue
        queries.append(EvalQuery(qid, text, frozenset(relevant)))
        if limit_queries is not None and len(queries) >= limit_queries:
            break
    return EvalSet(f"{directory.name} ({split})", documents, None, queries)


# SQuAD dev articles whose index is 3 mod 4 (12 of 48) are held out from the default model's
# training data (almanac.finetune.raft): answers are evaluated on those articles only.
SQUAD_HELDOUT_EVERY = 4
SQUAD_HELDOUT_REMAINDER = 3


def squad_part(article_index: int) -> str:
    """ "heldout" or "train": the fixed split of SQuAD dev articles."""
    heldout = article_index % SQUAD_HELDOUT_EVERY == SQUAD_HELDOUT_REMAINDER
    return "heldout" if heldout else "train"


def squad_heldout(queries: Sequence[EvalQuery]) -> list[EvalQuery]:
    """The questions of the held-out articles (document ids are ``"{article}-{paragraph}"``)."""
    return [
        q
        for q in queries
        if all(squad_part(int(doc.split("-", 1)[0])) == "heldout" for doc in q.relevant)
    ]


def load_squad(
    json_path: Path,
    limit_paragraphs: int | None = None,
    limit_queries: int | None = None,
) -> EvalSet:
    """SQuAD v1.1: paragraphs are documents (id ``"{article}-{paragraph}"``), questions queries.

    ``limit_paragraphs`` keeps the first N paragraphs (and their questions). ``limit_queries``
    keeps the first N questions, and as documents only the articles those questions come from.
    """
    json_path = Path(json_path)
    _require_file(json_path, "SQuAD file")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        articles = data["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{json_path}: not a SQuAD JSON file ({exc})") from exc
    documents: list[EvalDoc] = []
    queries: list[EvalQuery] = []
    used_articles: set[int] = set()
    doc_article: dict[str, int] = {}
    try:
        for a_idx, article in enumerate(articles):
            title = str(article.get("title", "")).replace("_", " ")
            for p_idx, para in enumerate(article["paragraphs"]):
                if limit_paragraphs is not None and len(documents) >= limit_paragraphs:
                    break
                doc_id = f"{a_idx}-{p_idx}"
                documents.append(EvalDoc(doc_id, title, str(para["context"])))
                doc_article[doc_id] = a_idx
                for qa in para.get("qas", []):
                    if limit_queries is not None and len(queries) >= limit_queries:
                        break
                    queries.append(
                        EvalQuery(str(qa["id"]), str(qa["question"]).strip(), frozenset({doc_id}))
                    )
                    used_articles.add(a_idx)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{json_path}: not a SQuAD JSON file (missing {exc})") from exc
    if limit_queries is not None:
        documents = [d for d in documents if doc_article[d.id] in used_articles]
    return EvalSet(json_path.stem, documents, None, queries)


_SOURCE_SPLIT = re.compile(r"[,;\n]")


def _folder_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def match_sources(spec: str, names: Iterable[str]) -> set[str]:
    """File names matched by a "Source Docs" cell: names or globs, comma/semicolon separated,
    case-insensitive; a plain name also matches a file's name without its extension."""
    names = list(names)
    matched: set[str] = set()
    for token in _SOURCE_SPLIT.split(spec):
        pattern = token.strip().strip("\"'").strip().lower()
        if not pattern:
            continue
        for name in names:
            low = name.lower()
            if any(c in pattern for c in "*?["):
                hit = fnmatch.fnmatchcase(low, pattern)
            else:
                hit = low == pattern or os.path.splitext(low)[0] == pattern
            if hit:
                matched.add(name)
    return matched


def load_folder_csv(
    folder: Path,
    csv_path: Path,
    question_col: str = "Question",
    sources_col: str = "Source Docs",
    limit_queries: int | None = None,
) -> EvalSet:
    """A folder of files plus a CSV of questions labelled with their source file names."""
    folder, csv_path = Path(folder), Path(csv_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"document folder not found: {folder}")
    _require_file(csv_path, "questions CSV")
    names = [p.name for p in _folder_files(folder)]
    if not names:
        raise ValueError(f"no files in {folder}")
    queries: list[EvalQuery] = []
    skipped = 0
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in (question_col, sources_col) if c not in header]
            if missing:
                raise ValueError(
                    f"{csv_path}: missing column(s) {', '.join(repr(c) for c in missing)}"
                )
            for row_no, raw in enumerate(reader, 1):
                row = {(k or "").strip(): (v or "") for k, v in raw.items() if isinstance(v, str)}
                question = row.get(question_col, "").strip()
                if not question:
                    continue
                relevant = match_sources(row.get(sources_col, ""), names)
                if not relevant:
                    skipped += 1
                    continue
                queries.append(EvalQuery(f"q{row_no}", question, frozenset(relevant)))
                if limit_queries is not None and len(queries) >= limit_queries:
                    break
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{csv_path}: malformed CSV ({exc})") from exc
    return EvalSet(folder.name, None, folder, queries, skipped)


# -- materialize ----------------------------------------------------------------------------------


def _path_key(path: Path) -> str:
    """How the knowledge base names a file (absolute, forward slashes)."""
    return Path(os.path.abspath(path)).as_posix()


def materialize(evalset: EvalSet, dest_folder: Path) -> dict[str, str]:
    """Write record documents as Markdown files in ``dest_folder``; returns {path: doc id}, with
    paths as the knowledge base records them. Folder sets map their own files. Files whose content
    is already there are left untouched, so a re-run does not look like a change."""
    if evalset.folder is not None:
        return {_path_key(p): p.name for p in _folder_files(evalset.folder)}
    dest = Path(dest_folder)
    dest.mkdir(parents=True, exist_ok=True)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for doc in evalset.documents or []:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", doc.id)[:100] or "doc"
        name, n = base, 1
        while name.lower() in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name.lower())
        path = dest / f"{name}.md"
        title = doc.title.strip() or doc.id
        content = f"# {title}\n\n{doc.text.strip()}\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
        mapping[_path_key(path)] = doc.id
    return mapping


# -- metrics --------------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-gain nDCG@k."""
    rel = set(relevant)
    if not rel:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in rel)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), k)))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def precision_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    return len(rel.intersection(ranked[:k])) / k


def mrr_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    for i, d in enumerate(ranked[:k]):
        if d in rel:
            return 1.0 / (i + 1)
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def doc_ranking(paths: Iterable[str], doc_of_path: Mapping[str, str]) -> list[str]:
    """Document ids in order of their first chunk; paths outside the set are ignored."""
    seen: set[str] = set()
    ranked: list[str] = []
    for path in paths:
        doc = doc_of_path.get(path)
        if doc is not None and doc not in seen:
            seen.add(doc)
            ranked.append(doc)
    return ranked


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    id: str
    ndcg10: float
    first_relevant_rank: int | None  # 1-based document rank, None when not retrieved
    null: bool  # below the relevance floor
    relevant_ranks: tuple[int, ...] = ()  # 1-based ranks of every retrieved relevant document
    relevant_count: int = 1  # labelled relevant documents
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class EvalReport:
    dataset: str
    queries: int
    k_values: tuple[int, ...]
    chunks: int
    floor: float
    metrics: dict[str, float]  # "ndcg@10", "recall@K", "mrr@10", "precision@5", "null_rate"
    latency_p50_ms: float
    latency_p95_ms: float
    per_query: tuple[QueryOutcome, ...] = field(default=())

    def recall_curve(self, max_k: int = 100) -> list[float]:
        """Mean document-level recall at k = 1..max_k, from every query's relevant ranks."""
        if not self.per_query:
            return [0.0] * max_k
        curve = [0.0] * max_k
        for q in self.per_query:
            for rank in q.relevant_ranks:
                if rank <= max_k:
                    # a relevant document found at ``rank`` counts for every k >= rank
                    for k in range(rank - 1, max_k):
                        curve[k] += 1.0 / max(q.relevant_count, 1)
        return [value / len(self.per_query) for value in curve]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "queries": self.queries,
            "k_values": list(self.k_values),
            "chunks": self.chunks,
            "floor": self.floor,
            **{name: round(value, 4) for name, value in self.metrics.items()},
            "latency_p50_ms": round(self.latency_p50_ms, 1),
            "latency_p95_ms": round(self.latency_p95_ms, 1),
            "per_query": [
                {
                    "id": q.id,
                    "ndcg@10": round(q.ndcg10, 4),
                    "first_relevant_rank": q.first_relevant_rank,
                    "null": q.null,
                    "relevant_ranks": list(q.relevant_ranks),
                    "latency_ms": round(q.latency_ms, 2),
                }
                for q in self.per_query
            ],
        }

    def table_rows(self) -> list[tuple[str, str]]:
        rows = [(name, f"{value:.4f}") for name, value in self.metrics.items()]
        rows.append(("latency p50 (ms)", f"{self.latency_p50_ms:.1f}"))
        rows.append(("latency p95 (ms)", f"{self.latency_p95_ms:.1f}"))
        return rows


def evaluate(
    searcher: Searcher,
    queries: Sequence[EvalQuery],
    doc_of_path: Mapping[str, str],
    k_values: Sequence[int] = (5, 10, 100),
    chunks: int = 100,
    floor: float | None = None,
    progress: ProgressFn | None = None,
    dataset: str = "",
) -> EvalReport:
    """Search every query and score the document ranking against its labels."""
    if chunks < 1:
        raise ValueError("chunks must be at least 1")
    threshold = searcher.config.relevance_floor if floor is None else floor
    k_values = tuple(k_values)
    sums: dict[str, float] = {"ndcg@10": 0.0}
    for k in k_values:
        sums[f"recall@{k}"] = 0.0
    sums["mrr@10"] = 0.0
    sums["precision@5"] = 0.0
    nulls = 0
    latencies: list[float] = []
    outcomes: list[QueryOutcome] = []
    total = len(queries)
    for i, query in enumerate(queries):
        start = time.perf_counter()
        result = searcher.search(query.text, chunks, floor=-1.0)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        latencies.append(elapsed_ms)
        ranked = doc_ranking((hit.path for hit in result.hits), doc_of_path)
        rel = query.relevant
        ndcg = ndcg_at_k(ranked, rel, 10)
        sums["ndcg@10"] += ndcg
        for k in k_values:
            sums[f"recall@{k}"] += recall_at_k(ranked, rel, k)
        sums["mrr@10"] += mrr_at_k(ranked, rel, 10)
        sums["precision@5"] += precision_at_k(ranked, rel, 5)
        is_null = searcher.search(query.text, 1, floor=threshold).relevant is False
        nulls += is_null
        ranks = tuple(r + 1 for r, d in enumerate(ranked) if d in rel)
        first = ranks[0] if ranks else None
        outcomes.append(QueryOutcome(query.id, ndcg, first, is_null, ranks, len(rel), elapsed_ms))
        if progress is not None:
            progress(i + 1, total)
    n = max(total, 1)
    metrics = {name: value / n for name, value in sums.items()}
    metrics["null_rate"] = nulls / n
    return EvalReport(
        dataset=dataset,
        queries=total,
        k_values=k_values,
        chunks=chunks,
        floor=threshold,
        metrics=metrics,
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        per_query=tuple(outcomes),
    )
