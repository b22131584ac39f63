"""The evaluation report for people: a Markdown file with PNG plots beside it.

Plots are drawn with matplotlib's Agg canvas directly (no pyplot), so no GUI backend is ever
chosen or imported. Every piece of text that comes from a dataset or a model is escaped: a
question may hold Markdown or HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from almanac.core.evaluation.eval import EvalReport
from almanac.core.evaluation.eval_answers import AnswerReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT_NAME = "report.md"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~$])")
_LISTED = 10  # examples per list in the report

METRIC_NOTES = {
    "groundedness": "answer sentences supported by a passage they cite",
    "citation_validity": "[n] markers that point at a source the model was shown",
    "cited_answer_rate": "written answers with at least one citation",
    "cites_relevant_rate": "cited answers citing a labelled relevant document",
    "refusal_rate_negatives": "unanswerable questions refused (higher is better)",
    "refused_by_retrieval_negatives": "of those, refused by the retrieval floor alone",
    "false_refusal_rate": "answerable questions refused (lower is better)",
}


def md_escape(text: str, limit: int = 300) -> str:
    """One line of untrusted text, safe inside a Markdown table cell or list item."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 3].rstrip() + "..."
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


# -- plots ----------------------------------------------------------------------------------------


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _integer_counts(ax: Axes) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


def plot_recall_curve(report: EvalReport, path: Path, max_k: int = 100) -> Path:
    curve = report.recall_curve(max_k)
    fig, ax = _figure()
    ks = list(range(1, max_k + 1))
    ax.plot(ks, curve, color="#1f6feb")
    marks = [k for k in (1, 5, 10, max_k) if k <= max_k]
    ax.plot(marks, [curve[k - 1] for k in marks], "o", color="#1f6feb")
    for k in marks:
        ax.annotate(
            f"{curve[k - 1]:.2f}",
            (k, curve[k - 1]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlim(1, max_k)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("k (documents)")
    ax.set_ylabel("mean recall@k")
    ax.set_title(f"Recall@k, k = 1..{max_k}")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_ndcg_histogram(report: EvalReport, path: Path) -> Path:
    fig, ax = _figure()
    ax.hist(
        [q.ndcg10 for q in report.per_query],
        bins=[i / 10 for i in range(11)],
        color="#2da44e",
        edgecolor="white",
    )
    ax.set_xlabel("nDCG@10")
    ax.set_ylabel("queries")
    _integer_counts(ax)
    ax.set_title("nDCG@10 per query")
    return _save(fig, path)


def plot_latency_histogram(
    groups: Mapping[str, Sequence[float]], path: Path, *, unit: str, title: str
) -> Path:
    fig, ax = _figure()
    present = {name: list(values) for name, values in groups.items() if values}
    if present:
        ax.hist(list(present.values()), bins=20, stacked=True, label=list(present), alpha=0.85)
        if len(present) > 1:
            ax.legend()
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylabel("count")
    _integer_counts(ax)
    ax.set_title(title)
    return _save(fig, path)


# -- the Markdown ---------------------------------------------------------------------------------


def _table(rows: Sequence[tuple[str, str]], notes: Mapping[str, str] | None = None) -> list[str]:
    lines = [
        "| metric | value |" + (" meaning |" if notes else ""),
        "|---|---:|" + ("---|" if notes else ""),
    ]
    for name, value in rows:
        note = f" {(notes or {}).get(name, '')} |" if notes else ""
        lines.append(f"| {md_escape(name)} | {value} |{note}")
    return lines


def _retrieval_section(report: EvalReport, texts: Mapping[str, str]) -> list[str]:
    lines = [
        "## Retrieval",
        "",
        f"{report.queries} queries; document-level ranking from the top {report.chunks} chunks; "
        f"null-retrieval rate at floor {report.floor:.2f}.",
        "",
        *_table(report.table_rows()),
        "",
        "![Recall@k](recall_at_k.png)",
        "",
        "![nDCG@10 per query](ndcg_histogram.png)",
        "",
        "![Search latency](retrieval_latency.png)",
        "",
    ]
    misses = [q for q in report.per_query if q.ndcg10 < 1.0]
    hardest = sorted(misses, key=lambda q: (q.ndcg10, q.id))[:_LISTED]
    if hardest:
        lines += [
            f"### Hardest queries ({len(misses)} below a perfect nDCG@10)",
            "",
            "| query | nDCG@10 | first relevant rank |",
            "|---|---:|---:|",
        ]
        for q in hardest:
            rank = "-" if q.first_relevant_rank is None else str(q.first_relevant_rank)
            lines.append(f"| {md_escape(texts.get(q.id, q.id))} | {q.ndcg10:.3f} | {rank} |")
        lines.append("")
    return lines


def _answer_section(answers: AnswerReport) -> list[str]:
    lines = [
        f"## Answers ({md_escape(answers.model)})",
        "",
        f"{answers.positives} labelled questions and {answers.negatives} questions the documents "
        f"cannot answer (from {md_escape(answers.negatives_source or 'nowhere')}).",
        "",
        *_table(answers.table_rows(), METRIC_NOTES),
        "",
        "![Answer latency](answer_latency.png)",
        "",
    ]
    lists = {
        "False refusals": [
            o.question for o in answers.outcomes if o.kind == "positive" and o.refused
        ],
        "Unanswerable questions answered anyway": [
            f"{o.question} → {o.text}"
            for o in answers.outcomes
            if o.kind == "negative" and not o.refused
        ],
        "Unsupported sentences": [s for o in answers.outcomes for s in o.unsupported],
    }
    for title, items in lists.items():
        if not items:
            continue
        lines += [f"### {title} ({len(items)})", ""]
        lines += [f"- {md_escape(item)}" for item in items[:_LISTED]]
        if len(items) > _LISTED:
            lines.append(f"- ... and {len(items) - _LISTED} more (see the JSON output)")
        lines.append("")
    return lines


def write_report(
    directory: Path,
    report: EvalReport,
    answers: AnswerReport | None = None,
    query_texts: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write report.md and its plots into ``directory``; returns the files written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--report needs a folder, and {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        plot_recall_curve(report, directory / "recall_at_k.png"),
        plot_ndcg_histogram(report, directory / "ndcg_histogram.png"),
        plot_latency_histogram(
            {"search": [q.latency_ms for q in report.per_query]},
            directory / "retrieval_latency.png",
            unit="ms",
            title="Search latency per query",
        ),
    ]
    lines = [f"# Evaluation: {md_escape(report.dataset)}", ""]
    lines += _retrieval_section(report, query_texts or {})
    if answers is not None:
        written.append(
            plot_latency_histogram(
                {
                    label: [o.seconds for o in answers.outcomes if o.kind == kind]
                    for label, kind in (("answerable", "positive"), ("unanswerable", "negative"))
                },
                directory / "answer_latency.png",
                unit="s",
                title="Answer latency (whole answer)",
            )
        )
        lines += _answer_section(answers)
    path = directory / REPORT_NAME
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return [path, *written]
