"""The evaluation harness: loaders, metrics, a real ingest-and-search run, answer metrics with a
real model, the report with its plots, the CLI."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from almanac.core.answering.answer import AnswerConfig, AnswerService
from almanac.core.evaluation import eval as ev
from almanac.core.evaluation import eval_answers as ea
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.llm.base import ChatMessage, EngineInfo, GenerationConfig
from almanac.core.llm.llama_engine import LlamaCppEngine
from almanac.core.retrieval.retrieval import Searcher
from almanac.core.store.store import Store
from almanac.tooling import eval_report as er
from clirun import cli

REPO = Path(__file__).resolve().parents[2]

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
    # recall@k curve: two relevant documents at ranks 1 and 4, and a query that found nothing
    outcomes = (
        ev.QueryOutcome("a", 0.0, 1, False, relevant_ranks=(1, 4), relevant_count=2),
        ev.QueryOutcome("b", 0.0, None, False, relevant_ranks=(), relevant_count=1),
    )
    report = ev.EvalReport("x", 2, (10,), 100, 0.25, {}, 0.0, 0.0, outcomes)
    assert report.recall_curve(5) == pytest.approx([0.25, 0.25, 0.25, 0.5, 0.5])


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
    assert by_id["q1"].relevant_ranks == (1,) and by_id["q4"].relevant_ranks == ()
    assert all(q.latency_ms > 0 for q in report.per_query)
    curve = report.recall_curve(20)
    assert len(curve) == 20 and curve[0] == curve[-1] == pytest.approx(0.75)
    m = report.metrics
    assert m["ndcg@10"] == pytest.approx(0.75)
    assert m["mrr@10"] == pytest.approx(0.75)
    assert m["recall@5"] == m["recall@10"] == m["recall@100"] == pytest.approx(0.75)
    assert m["precision@5"] == pytest.approx(0.75 * 0.2)
    assert m["null_rate"] == 0.0
    assert report.latency_p95_ms >= report.latency_p50_ms > 0
    as_json = report.to_json()
    assert as_json["ndcg@10"] == 0.75 and as_json["queries"] == 4
    assert as_json["per_query"][0]["relevant_ranks"] == [1]
    # nothing clears a floor of 1.0: every query is a null retrieval
    strict = ev.evaluate(kb.searcher, evalset.queries[:2], doc_of_path, floor=1.0)
    assert strict.metrics["null_rate"] == 1.0
    assert strict.metrics["ndcg@10"] == 1.0  # ranking itself ignores the floor


# -- negatives, sampling, escaping ---------------------------------------------------------------


def test_read_questions_in_every_format(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(
        json.dumps(["Who?", {"question": "What?"}, "  ", "Who?"]), encoding="utf-8"
    )
    assert ea.read_questions(tmp_path / "list.json") == ["Who?", "What?"]  # blanks, repeats gone
    squad = {"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "Q1?"}]}]}]}
    (tmp_path / "squad.json").write_text(json.dumps(squad), encoding="utf-8")
    assert ea.read_questions(tmp_path / "squad.json") == ["Q1?"]
    beir = write_beir(tmp_path / "beir")
    from_beir = ea.read_questions(beir)  # a BEIR folder: all of its queries
    assert from_beir[0] == QUERIES["q1"][0] and "a query without qrels" in from_beir
    (tmp_path / "q.csv").write_text("question,x\nA csv question?,1\n", encoding="utf-8")
    assert ea.read_questions(tmp_path / "q.csv") == ["A csv question?"]
    (tmp_path / "q.txt").write_text("one?\n\ntwo?\n", encoding="utf-8")
    assert ea.read_questions(tmp_path / "q.txt") == ["one?", "two?"]
    (tmp_path / "bad.json").write_text('{"x": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json"):
        ea.read_questions(tmp_path / "bad.json")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        ea.read_questions(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError):
        ea.read_questions(tmp_path / "missing.json")


def test_default_negatives_is_the_other_shared_dataset(tmp_path: Path) -> None:
    beir = write_beir(tmp_path / "scifact")
    assert ea.default_negatives(beir=beir) is None  # no SQuAD beside it yet
    (tmp_path / "squad").mkdir()
    squad_file = tmp_path / "squad" / "dev-v1.1.json"
    squad_file.write_text('{"data": []}', encoding="utf-8")
    assert ea.default_negatives(beir=beir) == squad_file.resolve()
    assert ea.default_negatives(squad=squad_file) == beir.resolve()
    assert ea.default_negatives() is None


def test_sample_is_seeded_and_keeps_order() -> None:
    items = list(range(100))
    picked = ea.sample(items, 10, seed=3)
    assert picked == sorted(picked) and len(set(picked)) == 10
    assert picked == ea.sample(items, 10, seed=3)
    assert ea.sample(items[:5], 10) == items[:5]


def test_md_escape_neutralizes_markdown_and_html() -> None:
    hostile = "<script>alert(1)</script> | [click](javascript:x) **bold**\n# heading"
    safe = er.md_escape(hostile)
    assert "<script>" not in safe and "&lt;script&gt;" in safe
    assert "\\|" in safe and "\\[click\\]\\(javascript:x\\)" in safe and "\\*\\*bold" in safe
    assert "\n" not in safe
    assert er.md_escape("x" * 500, limit=50).endswith("...")


# -- answer metrics ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, embedder, sample_kb):
    """The sample knowledge base indexed once, with the path -> file name labels of the harness."""
    root = tmp_path_factory.mktemp("eval-answers")
    docs = root / "docs"
    shutil.copytree(sample_kb, docs)
    store = Store(root / "kb", dim=embedder.dim, embedder_name=embedder.name)
    Ingestor(store, embedder, Chunker(embedder.count_tokens, ChunkingConfig())).ingest([docs])
    doc_of_path = ev.materialize(ev.EvalSet("sample", None, docs, []), root / "unused")
    searcher = Searcher(store, embedder)
    yield searcher, doc_of_path
    searcher.close()


class ScriptedEngine:
    """Replies with a fixed text per question (matched in the last user message): a fake for the
    one piece under test, the scoring of answers."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.info = EngineInfo("scripted", "scripted", 4096, "none")

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content) // 4 + 4 for m in messages)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        config: GenerationConfig,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        asked = messages[-1].content
        text = next(reply for key, reply in self.replies.items() if key in asked)
        for word in text.split(" "):
            yield word + " "

    def close(self) -> None:
        pass


RESET_Q = "How long is the password reset link valid?"
SILENT_Q = "How do I install Northwind Sync silently for all users on Windows?"


def test_scores_a_crafted_answer_exactly(sample_index, embedder) -> None:
    searcher, doc_of_path = sample_index
    hits = searcher.search(RESET_Q, 5).hits  # what the service will show the model
    fact = next(n for n, hit in enumerate(hits, 1) if "30 minutes" in hit.text)
    other = 1 if fact != 1 else 2
    engine = ScriptedEngine(
        {
            # one supported claim, one unsupported claim, one marker with no source, one
            # sentence too short to be a claim
            RESET_Q: (
                f"The reset link expires after 30 minutes and can be used only once [{fact}]. "
                f"The moon is made of green cheese and orbits Jupiter [{other}]. Thanks! [9]"
            ),
            SILENT_Q: "I couldn't find that in your documents.",
        }
    )
    service = AnswerService(searcher, embedder, engine)
    manual = "northwind-sync-user-manual.pdf"
    positives = [
        ev.EvalQuery("reset", RESET_Q, frozenset({manual})),
        ev.EvalQuery("silent", SILENT_Q, frozenset({manual})),
    ]
    off_topic = "Which country won the 2010 FIFA World Cup?"
    assert searcher.search(off_topic, 5).relevant is False  # the premise: below the floor
    seen: list[tuple[int, int]] = []
    report = ea.evaluate_answers(
        service,
        positives,
        [off_topic],
        doc_of_path=doc_of_path,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    reset, silent, negative = report.outcomes
    assert (reset.claims, reset.supported) == (2, 1)
    assert reset.unsupported == (f"The moon is made of green cheese and orbits Jupiter [{other}].",)
    assert (reset.markers, reset.valid_markers, reset.sources) == (3, 2, len(hits))
    assert reset.cited and not reset.refused
    cited_docs = {doc_of_path[hits[n - 1].path] for n in (fact, other)}
    assert reset.cites_relevant is (manual in cited_docs)
    assert silent.refused and silent.refused_by == "model"  # retrieval found it; the model refused
    assert negative.refused and negative.refused_by == "retrieval"
    assert negative.kind == "negative" and negative.markers == 0
    m = report.metrics
    assert m["groundedness"] == pytest.approx(0.5)
    assert m["citation_validity"] == pytest.approx(2 / 3)
    assert m["cited_answer_rate"] == 1.0  # the only written answer cites
    assert m["refusal_rate_negatives"] == 1.0 and m["refused_by_retrieval_negatives"] == 1.0
    assert m["false_refusal_rate"] == pytest.approx(0.5)
    assert report.positives == 2 and report.negatives == 1
    as_json = report.to_json()
    assert as_json["per_answer"][0]["markers"] == 3 and as_json["groundedness"] == 0.5


class RecordingEngine:
    """The real engine, with what it streamed kept per call (to recount markers independently)."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine = engine
        self.raw: list[str] = []

    @property
    def info(self) -> EngineInfo:
        return self.engine.info

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.engine.count_tokens(messages)

    def stream_chat(self, messages, config, stop=None) -> Iterator[str]:
        self.raw.append("")
        for piece in self.engine.stream_chat(messages, config, stop):
            self.raw[-1] += piece
            yield piece

    def close(self) -> None:
        self.engine.close()


def test_answer_metrics_with_the_tiny_model(
    sample_index, embedder, tiny_gguf, sample_questions, unanswerable_questions
) -> None:
    searcher, doc_of_path = sample_index
    engine = RecordingEngine(LlamaCppEngine(tiny_gguf, n_ctx=2048))
    try:
        service = AnswerService(
            searcher, embedder, engine, config=AnswerConfig(max_tokens=48, temperature=0.0)
        )
        positives = [
            ev.EvalQuery(f"p{i}", str(q["question"]), frozenset({Path(str(q["path"])).name}))
            for i, q in enumerate(sample_questions[:3])
        ]
        negatives = [str(q["question"]) for q in unanswerable_questions]
        report = ea.evaluate_answers(service, positives, negatives, doc_of_path=doc_of_path)
    finally:
        engine.close()
    for name, value in report.metrics.items():
        assert value is None or 0.0 <= value <= 1.0, name
    outcomes = report.outcomes
    assert [o.kind for o in outcomes] == ["positive"] * 3 + ["negative"] * len(negatives)
    # Every negative the retrieval floor rejects must be refused without generating; the rate
    # counts those real refusals (plus any the model made itself).
    floor_rejects = [searcher.search(q, 5).relevant is False for q in negatives]
    assert sum(floor_rejects) > 0
    for rejected, o in zip(floor_rejects, outcomes[3:], strict=True):
        if rejected:
            assert o.refused and o.refused_by == "retrieval" and o.markers == 0
    refused = sum(o.refused for o in outcomes[3:])
    assert refused >= sum(floor_rejects)
    assert report.metrics["refusal_rate_negatives"] == pytest.approx(refused / len(negatives))
    # Markers recounted from what the model streamed: valid ones point at a shown source.
    written = [o for o in outcomes if o.mode == "model"]
    assert len(engine.raw) == sum(o.refused_by != "retrieval" for o in outcomes)
    generated = [o for o in outcomes if o.refused_by != "retrieval"]
    total = valid = 0
    for raw, o in zip(engine.raw, generated, strict=True):
        numbers = [int(n) for group in re.findall(r"\[([\d,\s]+)\]", raw) for n in group.split(",")]
        total += len(numbers)
        valid += sum(1 <= n <= o.sources for n in numbers)
    assert total > 0  # the tiny model cites
    assert report.metrics["citation_validity"] == pytest.approx(valid / total)
    claims = sum(o.claims for o in written)
    if claims:
        supported = sum(o.supported for o in written)
        assert report.metrics["groundedness"] == pytest.approx(supported / claims)
    assert report.latency_p95_s >= report.latency_p50_s > 0


# -- the CLI -------------------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, path


def test_cli_eval_beir_json_and_report(tmp_path: Path) -> None:
    beir = write_beir(tmp_path / "beir")
    report_dir = tmp_path / "report"
    run = cli("eval", "--beir", str(beir), "--limit", "4", "--json", "--report", str(report_dir))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    for key in ("ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10", "precision@5"):
        assert 0.0 <= result[key] <= 1.0
    assert result["ndcg@10"] == pytest.approx(0.75)
    assert "null_rate" in result and "latency_p50_ms" in result
    assert result["queries"] == 4 and "answers" not in result  # no model: retrieval only
    assert "queries [" not in run.stderr  # stderr is not a terminal and no --progress
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Evaluation: beir")
    assert "| ndcg@10 | 0.7500 |" in md and "## Answers" not in md
    # the one query whose document is missing is the hardest, shown by its (escaped) text
    assert "Why do ocean tides rise and fall?" in md
    for name in ("recall_at_k.png", "ndcg_histogram.png", "retrieval_latency.png"):
        assert f"]({name})" in md
        assert_png(report_dir / name)


def test_cli_eval_answers_with_the_tiny_model(tmp_path: Path, tiny_gguf, sample_kb) -> None:
    questions = json.loads((REPO / "tests" / "data" / "sample_kb_questions.json").read_text())
    csv_path = tmp_path / "questions.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Question", "Source Docs"])
        for q in questions[:6]:
            writer.writerow([q["question"], Path(q["path"]).name])
    report_dir = tmp_path / "report"
    run = cli(
        "eval",
        "--folder",
        str(sample_kb),
        "--csv",
        str(csv_path),
        "--model",
        str(tiny_gguf),
        "--answers",
        "3",
        "--negatives",
        str(REPO / "tests" / "data" / "sample_kb_unanswerable.json"),
        "--negative-count",
        "8",
        "--max-tokens",
        "48",
        "--report",
        str(report_dir),
        "--progress",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    for label in ("indexing [", "queries [", "answers ["):
        assert label in run.stderr, run.stderr
    assert "answers [########################] 11/11" in run.stderr
    result = json.loads(run.stdout)
    answers = result["answers"]
    assert answers["positives"] == 3 and answers["negatives"] == 8
    assert answers["negatives_source"].endswith("sample_kb_unanswerable.json")
    per = answers["per_answer"]
    for key in ("groundedness", "citation_validity", "cited_answer_rate", "false_refusal_rate"):
        assert answers[key] is None or 0.0 <= answers[key] <= 1.0
    negatives = [a for a in per if a["kind"] == "negative"]
    assert any(a["refused_by"] == "retrieval" for a in negatives)  # the floor refuses some
    assert answers["refusal_rate_negatives"] == pytest.approx(
        sum(a["refused"] for a in negatives) / 8, abs=1e-4
    )
    assert answers["refusal_rate_negatives"] > 0
    markers = sum(a["markers"] for a in per)
    if markers:
        valid = sum(a["valid_markers"] for a in per)
        assert answers["citation_validity"] == pytest.approx(valid / markers, abs=1e-4)
    assert answers["latency_p50_s"] > 0
    md = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "## Answers (tiny-chat-" in md and "refusal\\_rate\\_negatives" in md
    assert_png(report_dir / "answer_latency.png")


def test_report_plots_never_load_a_gui_toolkit(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from almanac.core.evaluation import eval as ev\n"
        "from almanac.tooling import eval_report as er\n"
        "q = ev.QueryOutcome('a', 0.5, 2, False, (2,), 1, 3.0)\n"
        "r = ev.EvalReport('x', 1, (10,), 100, 0.25, {'ndcg@10': 0.5}, 3.0, 3.0, (q,))\n"
        f"er.write_report(Path({str(tmp_path / 'r')!r}), r)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('PySide', 'shiboken', 'PyQt',"
        " 'matplotlib.pyplot', 'tkinter'))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    assert_png(tmp_path / "r" / "recall_at_k.png")


def test_cli_eval_usage_and_input_errors(tmp_path: Path, tiny_gguf) -> None:
    run = cli("eval")
    assert run.returncode == 2
    assert "exactly one dataset" in run.stderr
    both = cli("eval", "--beir", str(tmp_path), "--squad", str(tmp_path / "x.json"))
    assert both.returncode == 2
    missing = cli("eval", "--squad", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "not found" in missing.stderr
    beir = write_beir(tmp_path / "beir")
    assert cli("eval", "--beir", str(beir), "--answers", "0").returncode == 2
    a_file = tmp_path / "report.md"
    a_file.write_text("", encoding="utf-8")
    as_file = cli("eval", "--beir", str(beir), "--report", str(a_file))
    assert as_file.returncode == 1 and "needs a folder" in as_file.stderr
    # with a model, bad negatives fail at once, before any indexing
    no_negatives = cli(
        "eval", "--beir", str(beir), "--model", str(tiny_gguf), "--negatives", str(tmp_path / "x")
    )
    assert no_negatives.returncode == 1, no_negatives.stderr
    assert "negative questions not found" in no_negatives.stderr
    assert "indexing" not in no_negatives.stderr


def test_cli_eval_reuses_its_kb_and_refuses_one_built_from_other_files(
    tmp_path: Path, sample_kb: Path
) -> None:
    beir = write_beir(tmp_path / "beir")
    kb = tmp_path / "kb"
    first = cli("eval", "--beir", str(beir), "--limit", "4", "--json", "--kb", str(kb))
    assert first.returncode == 0, first.stderr
    again = cli("eval", "--beir", str(beir), "--limit", "4", "--json", "--kb", str(kb))
    assert again.returncode == 0, again.stderr
    assert "reusing the index" in again.stderr and "warning" not in again.stderr
    assert json.loads(again.stdout)["ndcg@10"] == json.loads(first.stdout)["ndcg@10"]

    other = tmp_path / "other-kb"
    assert cli("ingest", str(sample_kb), "--kb", str(other), "-q").returncode == 0
    wrong = cli("eval", "--beir", str(beir), "--limit", "4", "--json", "--kb", str(other))
    assert wrong.returncode == 1
    assert "holds none of the" in wrong.stderr and wrong.stdout == ""
