"""An evaluation run (``almanac eval``): index a labelled dataset's documents, measure retrieval,
and with a model measure the answers. The front end chooses the dataset and shows progress and
notes; everything between is here."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from almanac.app.services import build_engine, build_services
from almanac.core.answering.answer import AnswerConfig, AnswerService
from almanac.core.evaluation import eval as ev
from almanac.core.evaluation.eval_answers import AnswerReport, evaluate_answers, sample
from almanac.core.llm.base import Engine
from almanac.core.store.store import read_meta


class EvaluationError(ValueError):
    """A run that cannot give a meaningful result; the message says why and what to do."""


class Progress(Protocol):
    def update(self, done: int, total: int, note: str = "") -> None: ...

    def close(self) -> None: ...


# phase ("indexing", "queries", "answers") and unit ("files", "" for the default) -> a progress sink
ProgressFactory = Callable[[str, str], Progress]
Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AnswerRun:
    """How answers are generated and how many are scored (``eval``'s fixed measuring settings,
    not the user's chat settings)."""

    model: Path | None
    server_url: str | None = None
    server_model: str | None = None
    n_ctx: int = 4096
    gpu_layers: int | str = "auto"
    threads: int | None = None
    sources: int = 5
    max_tokens: int = 256
    temperature: float = 0.0
    count: int = 50  # labelled questions sampled
    negatives: Sequence[str] = ()  # unanswerable questions
    negatives_source: str = "none"
    heldout_only: bool = False  # SQuAD: only the articles the default model never trained on


@dataclass(frozen=True, slots=True)
class EvaluationRun:
    evalset: ev.EvalSet
    kb: Path | None  # an index to build or reuse; None: a temporary one, deleted afterwards
    embedding_model: Path | None = None
    embedder_backend: str | None = None
    chunks: int = 10
    floor: float | None = None
    answers: AnswerRun | None = None  # None: retrieval only


@dataclass(frozen=True, slots=True)
class EvaluationOutcome:
    retrieval: ev.EvalReport
    answers: AnswerReport | None


def run_evaluation(
    run: EvaluationRun, *, progress: ProgressFactory, note: Note
) -> EvaluationOutcome:
    evalset = run.evalset
    engine: Engine | None = None
    temp: str | None = None
    if run.kb is None:
        temp = tempfile.mkdtemp(prefix="almanac-eval-")
        kb = Path(temp) / "kb"
        docs_dir = Path(temp) / "docs"
    else:
        kb = run.kb
        docs_dir = kb.parent / f"{kb.name}-docs"
    answers: AnswerReport | None = None
    a = run.answers
    try:
        if a is not None:
            engine = build_engine(
                a.model,
                server_url=a.server_url,
                server_model=a.server_model,
                n_ctx=a.n_ctx,
                gpu_layers=a.gpu_layers,
                threads=a.threads,
            )
        doc_of_path = ev.materialize(evalset, docs_dir)
        services = build_services(
            kb, embedding_model=run.embedding_model, embedder_backend=run.embedder_backend
        )
        try:
            try:
                read_meta(kb)
                indexed = services.store.count_chunks() > 0
            except Exception:
                indexed = False
            if indexed:
                check_reused_kb(
                    kb, set(services.store.documents()), doc_of_path, evalset.name, note
                )
                note(f"reusing the index in {kb}")
            else:
                source = evalset.folder if evalset.folder is not None else docs_dir
                note(f"indexing {len(doc_of_path)} documents from {source}")
                bar = progress("indexing", "files")
                ingest = services.ingestor.ingest(
                    [source],
                    progress=lambda p: bar.update(
                        p.files_done, p.files_total, f"{p.chunks_done} chunks"
                    ),
                )
                bar.close()
                if ingest.failed:
                    note(f"almanac eval: {len(ingest.failed)} file(s) failed")
            bar = progress("queries", "")
            report = ev.evaluate(
                services.searcher,
                evalset.queries,
                doc_of_path,
                chunks=run.chunks,
                floor=run.floor,
                progress=bar.update,
                dataset=evalset.name,
            )
            bar.close()
            if engine is not None and a is not None:
                service = AnswerService(
                    services.searcher,
                    services.embedder,
                    engine,
                    config=AnswerConfig(
                        sources=a.sources, max_tokens=a.max_tokens, temperature=a.temperature
                    ),
                )
                bar = progress("answers", "")
                answerable = (
                    ev.squad_heldout(evalset.queries) if a.heldout_only else evalset.queries
                )
                answers = evaluate_answers(
                    service,
                    sample(answerable, a.count, seed=0),
                    list(a.negatives),
                    doc_of_path=doc_of_path,
                    progress=bar.update,
                    negatives_source=a.negatives_source,
                )
                bar.close()
        finally:
            services.searcher.close()
    finally:
        if engine is not None:
            engine.close()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return EvaluationOutcome(report, answers)


def check_reused_kb(
    kb: Path, indexed: set[str], doc_of_path: dict[str, str], dataset: str, note: Note
) -> None:
    """A knowledge base built from other files would score every query 0 without complaint."""
    matched = len(indexed & set(doc_of_path))
    if matched == 0:
        raise EvaluationError(
            f"the knowledge base in {kb} holds none of the {len(doc_of_path)} documents of "
            f"{dataset} (it was built from other files); give --kb a new folder or leave it out"
        )
    if matched < len(doc_of_path):
        note(
            f"almanac eval: warning: {len(doc_of_path) - matched} of the {len(doc_of_path)} "
            f"documents of {dataset} are not in {kb}; their queries can't find them"
        )
    if len(indexed) > matched:
        note(
            f"almanac eval: warning: {kb} also holds {len(indexed) - matched} document(s) "
            "that are not part of the dataset"
        )
