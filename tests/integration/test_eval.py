"""The retrieval evaluation harness: loaders, metrics, a real ingest-and-search run, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from almanac.core import eval as ev

DOCS = {
    "d1": (
        "Volcanoes",
        "Volcanic eruptions send lava, ash and sulfur gases out of the magma chamber.",
    ),
    "d2": (
        "Sourdough",
        "Sourdough bread is leavened with a starter of wild yeast and flour, baked.",
    ),
    "d3": ("Chess", "The Sicilian Defence is a chess opening answering the king's pawn with c5."),
    "d4": ("Solar panels", "Photovoltaic solar panels convert sunlight into electricity on roofs."),
    "d5": ("Honeybees", "Honeybee colonies have a queen, worker bees and drones making honey."),
    "d6": ("Tides", "Ocean tides rise and fall because of the gravitational pull of the moon."),
}
QUERIES = {
    "q1": ("How is sourdough bread leavened with a starter?", "d2"),
    "q2": ("Which chess opening answers the king's pawn with c5?", "d3"),
    "q3": ("What do photovoltaic solar panels on roofs produce?", "d4"),
    "q4": ("Why do ocean tides rise and fall?", "missing-doc"),  # relevant doc not in the corpus
}


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in DOCS.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, (text, _) in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
        f.write(json.dumps({"_id": "q9", "text": "a query without qrels"}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, (_, d) in QUERIES.items()]
    lines.append("q1\td5\t0")  # score 0: not relevant
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


# -- metrics on fixed rankings -------------------------------------------------------------------


def test_metrics_on_fixed_rankings() -> None:
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert ev.ndcg_at_k(ranked, {"a"}, 10) == 1.0
    assert ev.ndcg_at_k(ranked, {"b"}, 10) == pytest.approx(1 / math.log2(3))
    assert ev.ndcg_at_k(ranked, {"z"}, 10) == 0.0
    # two relevant at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3))
    assert ev.ndcg_at_k(ranked, {"a", "c"}, 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ev.ndcg_at_k(ranked, {"f"}, 5) == 0.0
    assert ev.recall_at_k(ranked, {"a", "f"}, 5) == 0.5
    assert ev.recall_at_k(ranked, {"a", "f"}, 10) == 1.0
    assert ev.precision_at_k(ranked, {"a", "c", "z"}, 5) == pytest.approx(0.4)
    assert ev.mrr_at_k(ranked, {"c"}, 10) == pytest.approx(1 / 3)
    assert ev.mrr_at_k(ranked, {"c"}, 2) == 0.0
    assert ev.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert ev.percentile([5.0], 95) == 5.0
    # document-level ranking: first chunk of each document, unknown paths ignored
    paths = ["/x/a.md", "/x/a.md", "/other.md", "/x/b.md", "/x/a.md"]
    assert ev.doc_ranking(paths, {"/x/a.md": "A", "/x/b.md": "B"}) == ["A", "B"]


# -- loaders -------------------------------------------------------------------------------------


def test_load_beir(tmp_path: Path) -> None:
    evalset = ev.load_beir(write_beir(tmp_path / "beir"))
    assert [q.id for q in evalset.queries] == ["q1", "q2", "q3", "q4"]  # q9 has no qrels
    assert evalset.queries[0].relevant == {"d2"}  # the score-0 row is not relevant
    assert [d.id for d in evalset.documents or []] == list(DOCS)
    assert len(ev.load_beir(tmp_path / "beir", limit_queries=2).queries) == 2
    with pytest.raises(FileNotFoundError):
        ev.load_beir(tmp_path / "beir", split="test")


def test_load_squad(tmp_path: Path) -> None:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "First_Article",
                "paragraphs": [
                    {"context": "Para zero.", "qas": [{"id": "a", "question": "Q a?"}]},
                    {
                        "context": "Para one.",
                        "qas": [
                            {"id": "b", "question": "Q b?"},
                            {"id": "c", "question": "Q c?"},
                        ],
                    },
                ],
            },
            {
                "title": "Second",
                "paragraphs": [{"context": "Other.", "qas": [{"id": "d", "question": "Q d?"}]}],
            },
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    full = ev.load_squad(path)
    assert [d.id for d in full.documents or []] == ["0-0", "0-1", "1-0"]
    assert full.documents and full.documents[0].title == "First Article"
    assert {q.id: set(q.relevant) for q in full.queries} == {
        "a": {"0-0"},
        "b": {"0-1"},
        "c": {"0-1"},
        "d": {"1-0"},
    }
    # limited questions: only the articles they come from
    limited = ev.load_squad(path, limit_queries=2)
    assert [q.id for q in limited.queries] == ["a", "b"]
    assert [d.id for d in limited.documents or []] == ["0-0", "0-1"]
    assert [d.id for d in ev.load_squad(path, limit_paragraphs=1).documents or []] == ["0-0"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}', encoding="utf-8")
    with pytest.raises(ValueError):
        ev.load_squad(bad)


def test_load_folder_csv_with_globs(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("2023 Q3 AAPL.pdf", "2023 Q1 AAPL.pdf", "2023 Q3 MSFT.pdf"):
        (folder / name).write_bytes(b"%PDF-1.4")
    csv_path = tmp_path / "q.csv"
    csv_path.write_text(
        "\ufeffQuestion,Source Docs,Question Type\n"
        "Apple in Q3?,*2023 q3 aapl*,Single\n"
        '"Apple, all quarters?",*AAPL*,Multi\n'
        "Both?,2023 Q3 MSFT.pdf; 2023 Q1 AAPL,Multi\n"
        "Unknown?,*TSLA*,Single\n",
        encoding="utf-8",
    )
    evalset = ev.load_folder_csv(folder, csv_path)
    assert evalset.documents is None and evalset.folder == folder
    assert [set(q.relevant) for q in evalset.queries] == [
        {"2023 Q3 AAPL.pdf"},
        {"2023 Q3 AAPL.pdf", "2023 Q1 AAPL.pdf"},
        {"2023 Q3 MSFT.pdf", "2023 Q1 AAPL.pdf"},
    ]
    assert evalset.skipped_queries == 1
    mapping = ev.materialize(evalset, tmp_path / "unused")
    assert sorted(mapping.values()) == sorted(p.name for p in folder.iterdir())
    bad = tmp_path / "bad.csv"
    bad.write_text("Query,Docs\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        ev.load_folder_csv(folder, bad)


# -- a real run ----------------------------------------------------------------------------------


def test_evaluate_exact_metrics(tmp_path: Path, make_kb) -> None:
    evalset = ev.load_beir(write_beir(tmp_path / "beir"))
    docs = tmp_path / "docs"
    doc_of_path = ev.materialize(evalset, docs)
    assert len(doc_of_path) == 6
    assert (docs / "d2.md").read_text(encoding="utf-8").startswith("# Sourdough\n\n")
    kb = make_kb()
    kb.ingestor.ingest([docs])
    seen: list[tuple[int, int]] = []
    report = ev.evaluate(
        kb.searcher,
        evalset.queries,
        doc_of_path,
        floor=-1.0,
        progress=lambda done, total: seen.append((done, total)),
        dataset="tiny",
    )
    assert seen[-1] == (4, 4)
    by_id = {q.id: q for q in report.per_query}
    for qid in ("q1", "q2", "q3"):  # the relevant document ranks first
        assert by_id[qid].ndcg10 == 1.0
        assert by_id[qid].first_relevant_rank == 1
    assert by_id["q4"].ndcg10 == 0.0  # its relevant document is not in the results
    assert by_id["q4"].first_relevant_rank is None
    m = report.metrics
    assert m["ndcg@10"] == pytest.approx(0.75)
    assert m["mrr@10"] == pytest.approx(0.75)
    assert m["recall@5"] == m["recall@10"] == m["recall@100"] == pytest.approx(0.75)
    assert m["precision@5"] == pytest.approx(0.75 * 0.2)
    assert m["null_rate"] == 0.0
    assert report.latency_p95_ms >= report.latency_p50_ms > 0
    as_json = report.to_json()
    assert as_json["ndcg@10"] == 0.75 and as_json["queries"] == 4
    md = report.to_markdown()
    assert "| ndcg@10 | 0.7500 |" in md and "- recall@5: 0.7500" in md
    # nothing clears a floor of 1.0: every query is a null retrieval
    strict = ev.evaluate(kb.searcher, evalset.queries[:2], doc_of_path, floor=1.0)
    assert strict.metrics["null_rate"] == 1.0
    assert strict.metrics["ndcg@10"] == 1.0  # ranking itself ignores the floor


# -- the CLI -------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "almanac", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_eval_beir_json(tmp_path: Path) -> None:
    beir = write_beir(tmp_path / "beir")
    report_md = tmp_path / "report.md"
    run = cli("eval", "--beir", str(beir), "--limit", "4", "--json", "--report", str(report_md))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    for key in ("ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10", "precision@5"):
        assert 0.0 <= result[key] <= 1.0
    assert result["ndcg@10"] == pytest.approx(0.75)
    assert "null_rate" in result and "latency_p50_ms" in result
    assert result["queries"] == 4
    assert "queries 4/4" in run.stderr
    assert report_md.read_text(encoding="utf-8").startswith("# Retrieval evaluation")


def test_cli_eval_usage_and_input_errors(tmp_path: Path) -> None:
    run = cli("eval")
    assert run.returncode == 2
    assert "exactly one dataset" in run.stderr
    both = cli("eval", "--beir", str(tmp_path), "--squad", str(tmp_path / "x.json"))
    assert both.returncode == 2
    missing = cli("eval", "--squad", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "not found" in missing.stderr
