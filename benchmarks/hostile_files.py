"""Hostile files: peak memory and time of ``almanac ingest`` on a folder with one of them.

    .venv/bin/python benchmarks/hostile_files.py
    .venv/bin/python benchmarks/hostile_files.py --cases "zip bomb" --deadline 120
    PYTHONPATH=/tmp/old/desktop .venv/bin/python benchmarks/hostile_files.py   # another checkout

Each case is a fresh folder holding the good documents of ``tests/hostile/hostile_cases.py`` and
one hostile file, indexed by the real CLI in a child process (under a 4 GiB address-space limit).
Peak RSS and CPU time are the kernel's own counts for that process (``wait4``); they include
loading the embedder, which the ``baseline`` row (good documents only) shows alone. Target: every
row under 1 GB, every good document indexed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "hostile"))

from hostile_cases import CASES, GOOD, Case, write_good  # noqa: E402
from hostile_run import Run, run_cli, run_python  # noqa: E402

from almanac.core.indexing.ingest import posix  # noqa: E402


def measure(case: Case | None, deadline: float, *, direct: bool = False) -> list[str]:
    label = case.name if case else "baseline (good documents only)"
    if direct:
        label += ", named on the command line"
    with tempfile.TemporaryDirectory(prefix="almanac-hostile-") as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        write_good(docs)
        name = case.build(docs) if case is not None else ""
        kb = str(Path(tmp) / "kb")
        target = [str(docs / name)] + [str(docs / g) for g in GOOD] if direct else [str(docs)]
        try:
            run = run_cli("ingest", *target, "--kb", kb, "--json", "-q", deadline=deadline)
        except AssertionError:
            return [label, f"still running after {deadline:.0f} s: killed", "-", "-", "-", "-"]
        if run.returncode != 0:
            outcome = "ingest failed: " + (run.stderr.strip().splitlines() or ["?"])[-1][:70]
            return [label, outcome, "0", *_usage(run)]
        files = {f["path"]: f for f in run_cli("status", "--kb", kb, "--json").json()["files"]}
        good = sum(files.get(posix(docs / g), {}).get("status") == "indexed" for g in GOOD)
        entry = files.get(posix(docs / name)) if name else None
        if not name:
            outcome = "-"
        elif entry is None:
            under = [f for f in files if f.startswith(posix(docs / name) + "/")]
            outcome = (
                f"followed: {len(under)} file(s) under it indexed"
                if under
                else "not listed (skipped silently)"
            )
        elif entry["status"] == "indexed":
            outcome = f"indexed ({entry['chunks']} chunks)"
        else:
            outcome = str(entry["error"])
        return [label, outcome[:90], f"{good}/{len(GOOD)}", *_usage(run)]


def _usage(run: Run) -> list[str]:
    return [
        f"{run.max_rss_bytes / 2**20:.0f}",
        f"{run.cpu_seconds:.1f}",
        f"{run.wall_seconds:.1f}",
    ]


def measure_largest_text(deadline: float) -> list[str]:
    """The largest file a reader accepts (64 MB of prose), read and chunked but not embedded
    (that would take 15 minutes): the reading side of the 1 GB bound."""
    import random

    with tempfile.TemporaryDirectory(prefix="almanac-hostile-") as tmp:
        path = Path(tmp) / "big.txt"
        rnd = random.Random(1)
        words = ["printer", "network", "driver", "the", "a", "of", "install", "error", "ticket"]
        paragraphs = [" ".join(rnd.choice(words) for _ in range(120)) + ".\n\n" for _ in range(200)]
        with open(path, "w", encoding="utf-8") as f:
            size, i = 0, 0
            while size < 63 * 2**20:
                f.write(paragraphs[i % 200])
                size, i = size + len(paragraphs[i % 200]), i + 1
        script = (
            "import sys; from pathlib import Path; "
            "from almanac.app.services import build_services; "
            "from almanac.core.documents import read_document; "
            "s = build_services(Path(sys.argv[2])); d = read_document(Path(sys.argv[1])); "
            "print(len(s.ingestor.chunker.chunk_document(sys.argv[1], d)))"
        )
        try:
            run = run_python(script, str(path), str(Path(tmp) / "kb"), deadline=deadline)
        except AssertionError:
            return ["64 MB text (read + chunk only)", "killed", "-", "-", "-", "-"]
        chunks = run.stdout.strip() or run.stderr.strip()[-80:]
        return ["64 MB text (read + chunk only)", f"{chunks} chunks", "-", *_usage(run)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="only the cases whose name contains this")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds before a kill")
    parser.add_argument("--large", action="store_true", help="also the 64 MB text file")
    args = parser.parse_args()
    rows = [measure(None, args.deadline)]
    for case in CASES:
        if args.cases.lower() in case.name.lower():
            rows.append(measure(case, args.deadline))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
            if case.name == "FIFO":
                rows.append(measure(case, args.deadline, direct=True))
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    if args.large:
        rows.append(measure_largest_text(max(args.deadline, 600.0)))
    headers = ["case", "outcome", "good docs indexed", "peak RSS MiB", "CPU s", "wall s"]
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" if i < 2 else "--:" for i in range(len(headers))) + "|")
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")


if __name__ == "__main__":
    main()
