"""Shared helpers for the benchmark scripts: evaluation data, corpus folders, metrics, tables.

The evaluation data is read in place from ``../shared/eval`` (relative to the repository root);
it is never copied into the project. Scripts accept ``--eval-dir`` to point elsewhere.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval"
OUT_DIR = REPO_ROOT / "benchmarks" / "out"  # git-ignored scratch space

# Reference figures quoted in the issue (BEIR SciFact, test split, nDCG@10).
REFERENCE_NDCG10 = {
    "all-MiniLM-L6-v2 alone": "0.645",
    "BM25": "0.665-0.679",
}


# -- evaluation data ------------------------------------------------------------------------------


def add_eval_dir_arg(parser: Any) -> None:
    parser.add_argument(
        "--eval-dir",
        type=Path,
        default=DEFAULT_EVAL_DIR,
        help=f"evaluation data folder (default: {DEFAULT_EVAL_DIR})",
    )


def scifact_dir(eval_dir: Path) -> Path:
    folder = Path(eval_dir) / "scifact"
    if not (folder / "corpus.jsonl").is_file():
        sys.exit(
            f"SciFact not found under {eval_dir} (expected scifact/corpus.jsonl); use --eval-dir"
        )
    return folder


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True, slots=True)
class BeirDoc:
    doc_id: str
    title: str
    text: str


def load_scifact_corpus(eval_dir: Path, limit: int | None = None) -> list[BeirDoc]:
    docs: list[BeirDoc] = []
    for row in read_jsonl(scifact_dir(eval_dir) / "corpus.jsonl"):
        docs.append(
            BeirDoc(str(row["_id"]), (row.get("title") or "").strip(), row.get("text") or "")
        )
        if limit is not None and len(docs) >= limit:
            break
    return docs


def load_scifact_queries(eval_dir: Path) -> dict[str, str]:
    return {str(r["_id"]): r["text"] for r in read_jsonl(scifact_dir(eval_dir) / "queries.jsonl")}


def load_qrels(eval_dir: Path, split: str) -> dict[str, dict[str, int]]:
    """BEIR qrels as {query_id: {doc_id: score}} (only positive scores are kept)."""
    path = scifact_dir(eval_dir) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        sys.exit(f"no qrels for split {split!r}: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        if header and header[0] != "query-id":  # no header line after all
            qrels.setdefault(header[0], {})[header[1]] = int(header[2])
        for row in reader:
            if len(row) < 3:
                continue
            score = int(row[2])
            if score > 0:
                qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_squad_paragraphs(eval_dir: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """SQuAD v1.1 dev paragraphs as (article title, paragraph text)."""
    path = Path(eval_dir) / "squad" / "dev-v1.1.json"
    if not path.is_file():
        sys.exit(f"SQuAD not found: {path}; use --eval-dir")
    data = json.loads(path.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []
    for article in data["data"]:
        title = article["title"].replace("_", " ")
        for para in article["paragraphs"]:
            out.append((title, para["context"]))
            if limit is not None and len(out) >= limit:
                return out
    return out


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def passage_pool(eval_dir: Path, target_chars: int = 600) -> list[tuple[str, str]]:
    """Real passages of about chunk size: SciFact abstracts cut at sentences, plus SQuAD paragraphs.

    Returns (heading, text) pairs.
    """
    pool: list[tuple[str, str]] = []
    for doc in load_scifact_corpus(eval_dir):
        buf: list[str] = []
        size = 0
        for sentence in _SENTENCE_SPLIT.split(doc.text):
            buf.append(sentence)
            size += len(sentence) + 1
            if size >= target_chars:
                pool.append((doc.title, " ".join(buf)))
                buf, size = [], 0
        if buf:
            pool.append((doc.title, " ".join(buf)))
    pool.extend(load_squad_paragraphs(eval_dir))
    return pool


# -- corpus folders -------------------------------------------------------------------------------


def safe_name(doc_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", doc_id)


def markdown_for(doc: BeirDoc) -> str:
    return f"# {doc.title}\n\n{doc.text}\n"


def write_scifact_folder(docs: Iterable[BeirDoc], folder: Path) -> dict[str, str]:
    """One Markdown file per doc (``# {title}\\n\\n{text}``). Returns {file stem: doc id}."""
    folder.mkdir(parents=True, exist_ok=True)
    stems: dict[str, str] = {}
    for doc in docs:
        stem = safe_name(doc.doc_id)
        if stem in stems:
            raise ValueError(f"two documents map to the file name {stem!r}")
        stems[stem] = doc.doc_id
        (folder / f"{stem}.md").write_text(markdown_for(doc), encoding="utf-8")
    return stems


def write_squad_folder(paragraphs: Sequence[tuple[str, str]], folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (_title, text) in enumerate(paragraphs):
        (folder / f"squad-{i:05d}.txt").write_text(text + "\n", encoding="utf-8")
    return len(paragraphs)


# -- metrics --------------------------------------------------------------------------------------


def dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """nDCG@k with binary gains (as BEIR/pytrec_eval on SciFact, whose qrels are all 1)."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if relevant.get(d, 0) > 0)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    if not relevant:
        return 0.0
    return sum(1 for d in ranked[:k] if d in relevant) / len(relevant)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "max_ms": max(ms) if ms else float("nan"),
    }


# -- machine load ---------------------------------------------------------------------------------


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def busy_processes(top: int = 4, min_cpu: float = 5.0) -> list[str]:
    """Other processes using CPU right now (``ps`` %CPU is averaged over each process's life)."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid=,pcpu=,comm=", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    me = os.getpid()
    found: list[str] = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or int(parts[0]) == me:
            continue
        cpu = float(parts[1])
        if cpu < min_cpu:
            break
        found.append(f"{parts[2]}({cpu:.0f}%)")
        if len(found) >= top:
            break
    return found


def load_note(tag: str) -> dict[str, Any]:
    one, five, fifteen = loadavg()
    procs = busy_processes()
    print(
        f"[load {tag}] loadavg {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"
        + (f"; busy: {', '.join(procs)}" if procs else ""),
        flush=True,
    )
    return {"tag": tag, "loadavg": [one, five, fifteen], "busy": procs}


@dataclass(slots=True)
class Phase:
    """Wall time, this process's CPU time, and the 1-minute load average around a phase."""

    name: str
    wall: float = 0.0
    cpu: float = 0.0
    load_before: float = float("nan")
    load_after: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_per_wall(self) -> float:
        """Cores this process kept busy on average (2.0 = both cores of this machine)."""
        return self.cpu / self.wall if self.wall > 0 else float("nan")

    @property
    def load(self) -> str:
        return f"{self.load_before:.2f}->{self.load_after:.2f}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "cpu_per_wall": self.cpu_per_wall,
            "load1_before": self.load_before,
            "load1_after": self.load_after,
            **self.extra,
        }


@contextmanager
def measure(name: str) -> Iterator[Phase]:
    phase = Phase(name, load_before=loadavg()[0])
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    try:
        yield phase
    finally:
        phase.wall = time.perf_counter() - wall0
        phase.cpu = time.process_time() - cpu0
        phase.load_after = loadavg()[0]


class Timed:
    """Wraps a callable, accumulating its wall time and calls (used to instrument instances)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.seconds = 0.0
        self.calls = 0
        self.samples: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            self.seconds += elapsed
            self.calls += 1
            self.samples.append(elapsed)

    def reset(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.samples = []


@contextmanager
def instrument(obj: Any, *names: str) -> Iterator[dict[str, Timed]]:
    """Temporarily replace bound methods on one instance with timing wrappers.

    Methods the object doesn't have (the core evolves) are skipped: their timer stays at zero.
    """
    timers: dict[str, Timed] = {}
    wrapped: list[str] = []
    for name in names:
        method = getattr(obj, name, None)
        timers[name] = Timed(method)
        if method is not None:
            setattr(obj, name, timers[name])
            wrapped.append(name)
    try:
        yield timers
    finally:
        for name in wrapped:
            delattr(obj, name)  # the class attribute shows through again


# -- output ---------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2
) -> None:
    cells = [[fmt(v, digits) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print()
    print(title)
    print(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def machine_info() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def save_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nfigures saved to {path}")


def spin_one_core() -> subprocess.Popen[bytes]:
    """Another program keeping one core busy, as on a user's machine. In a session of its own:
    with the kernel's autogroup scheduling (most desktop Linux systems) a child in the
    benchmark's session shares the benchmark's slice of the CPU and holds well under a core.
    Out of the session, a Ctrl-C or a killed benchmark no longer reaches it: it stops by itself
    once its parent is gone."""
    spin = f"import os\nwhile os.getppid() == {os.getpid()}: pass"
    return subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)

