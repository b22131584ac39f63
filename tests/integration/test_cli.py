"""The command-line contract from DESIGN.md: outputs, JSON fields, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import clirun
from almanac.core.system.discovery import path_key

HIT_FIELDS = {"path", "page", "start", "end", "heading", "score", "text"}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return clirun.cli(*args, stdin=stdin, timeout=300)


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, sample_kb) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    shutil.copytree(sample_kb, docs)
    kb = root / "kb"
    run = cli("ingest", str(docs), "--kb", str(kb))
    assert run.returncode == 0, run.stderr
    assert "added 10" in run.stdout
    assert "files 10/10" in run.stderr  # progress lines
    return docs, kb


def test_search_json_fields(sample_index) -> None:
    docs, kb = sample_index
    run = cli("search", "Which ports does LAN sync use?", "--kb", str(kb), "-k", "3", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["relevant"] is True
    assert 1 <= len(result["hits"]) <= 3
    top = result["hits"][0]
    assert set(top) >= HIT_FIELDS
    assert top["path"] == (docs / "manual" / "northwind-sync-user-manual.pdf").as_posix()
    assert isinstance(top["page"], int) and top["page"] >= 1
    assert top["end"] > top["start"] >= 0
    assert "47310" in top["text"]


def test_search_text_output_and_nothing_relevant(sample_index) -> None:
    _, kb = sample_index
    run = cli("search", "How do I reset my password?", "--kb", str(kb), "-k", "2")
    assert run.returncode == 0
    assert run.stdout.startswith("1. ") and "\n2. " in run.stdout
    none = cli("search", "best sourdough bread recipe", "--kb", str(kb))
    assert none.returncode == 0
    assert "Nothing relevant found in your documents" in none.stdout


def test_search_jsonl_batch(sample_index) -> None:
    _, kb = sample_index
    queries = "\n".join(
        json.dumps(q)
        for q in (
            {"id": "q1", "text": "refund for an annual plan"},
            {"id": 2, "text": "what does error NW-611 mean"},
        )
    )
    run = cli("search", "--jsonl", "--kb", str(kb), "-k", "4", stdin=queries + "\n")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["q1", 2]
    hits = [h for line in lines for h in line["hits"]]
    assert hits and all(set(h) >= HIT_FIELDS for h in hits)
    # Both the FAQ's refund answer and the policy's "Annual subscriptions" section state the rule;
    # the top hit must be one of them, i.e. a passage that actually answers the question.
    top = lines[0]["hits"][0]
    assert "annual" in top["text"].lower() and "30 days" in top["text"]
    assert any(h["path"].endswith("refund-policy.html") for h in lines[0]["hits"])
    assert "NW-611" in json.dumps(lines[1]["hits"][0])


def test_search_filters_from_the_command_line(sample_index) -> None:
    docs, kb = sample_index
    run = cli("search", "refund", "--kb", str(kb), "--type", "md", "--json", "-k", "10")
    hits = json.loads(run.stdout)["hits"]
    assert hits and all(h["path"].endswith(".md") for h in hits)
    run = cli("search", "refund", "--kb", str(kb), "--path", str(docs / "policies"), "--json")
    hits = json.loads(run.stdout)["hits"]
    assert hits and all("/policies/" in h["path"] for h in hits)


def test_status_json(sample_index) -> None:
    _, kb = sample_index
    run = cli("status", "--kb", str(kb), "--json")
    assert run.returncode == 0
    status = json.loads(run.stdout)
    assert status["documents"] == 10 and status["chunks"] > 50
    assert status["by_status"] == {"indexed": 10}


def _status(kb: Path) -> dict:
    run = cli("status", "--kb", str(kb), "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_remove_excludes_until_ingested_again(sample_index, tmp_path) -> None:
    """`almanac remove` is the app's remove: out of the index, kept on disk, and left out by the
    folder ingest that reconciles the index with the disk until the path is named again."""
    docs, kb = sample_index
    copy = tmp_path / "kb"
    shutil.copytree(kb, copy)
    policies = docs / "policies"
    run = cli("remove", str(policies), "--kb", str(copy))
    assert run.returncode == 0 and "removed 4 documents" in run.stdout
    assert policies.is_dir()  # kept on disk
    status = _status(copy)
    assert status["documents"] == 6 and status["excluded"] == [path_key(policies)]
    text = cli("status", "--kb", str(copy)).stdout
    assert "Excluded: 1" in text and f"excluded: {path_key(policies)}" in text
    again = cli("remove", str(policies), "--kb", str(copy))
    assert again.returncode == 1 and again.stderr.startswith("almanac: error: nothing to remove")
    assert _status(copy)["excluded"] == [path_key(policies)]  # a failed remove changes nothing
    # The reconciliation: the whole folder, pruned. The removed folder stays out.
    run = cli("ingest", str(docs), "--kb", str(copy), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["added"], report["unchanged"]) == (0, 6)
    assert report["excluded"] == [path_key(policies)] and report["included_again"] == []
    assert "1 removed file or folder left out" in run.stderr
    assert _status(copy)["documents"] == 6
    # Named again: back in, and no longer excluded.
    run = cli("ingest", str(policies), "--kb", str(copy), "-q")
    assert run.returncode == 0, run.stderr
    assert "added 4" in run.stdout and "included again" in run.stdout
    status = _status(copy)
    assert status["documents"] == 10 and status["excluded"] == []


def test_a_removed_file_stays_out_of_watch(sample_index, tmp_path) -> None:
    """A file removed from a watched folder is not indexed again by `almanac watch`'s start-up
    reconciliation (the same pass the app's live sync runs at start)."""
    docs, kb = sample_index
    copy = tmp_path / "kb"
    shutil.copytree(kb, copy)
    doc = next(p for p in sorted((docs / "policies").iterdir()) if p.is_file())
    run = cli("remove", str(doc), "--kb", str(copy))
    assert run.returncode == 0 and "removed 1 document " in run.stdout
    watch = subprocess.Popen(
        [sys.executable, "-m", "almanac", "watch", str(docs), "--kb", str(copy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        line = watch.stdout.readline()
        assert line.startswith("reconciled: added 0,"), line + (
            watch.stderr.read() if watch.stderr else ""
        )
    finally:
        watch.send_signal(signal.SIGINT)
        watch.communicate(timeout=60)
    status = _status(copy)
    assert status["documents"] == 9 and status["excluded"] == [path_key(doc)]
    assert path_key(doc) not in {f["path"] for f in status["files"]}


@pytest.mark.parametrize(
    "args",
    [
        ("search",),
        ("search", "x", "-k", "0"),
        ("frobnicate",),
        ("ingest",),
        ("search", "--since", "yesterday", "x"),
    ],
)
def test_usage_errors_exit_2(args) -> None:
    assert cli(*args).returncode == 2


def test_failures_exit_1_with_one_line(tmp_path) -> None:
    for args in (
        ("search", "anything", "--kb", str(tmp_path / "missing")),
        ("status", "--kb", str(tmp_path / "missing")),
        ("ingest", str(tmp_path / "no-such-folder"), "--kb", str(tmp_path / "kb")),
    ):
        run = cli(*args)
        assert run.returncode == 1, args
        assert run.stderr.startswith("almanac: error: ")
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr


def test_core_never_imports_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, almanac.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'almanac.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import almanac.cli, almanac.app.services\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')]\n"
        "print(len(bad)); sys.exit(1 if bad else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
