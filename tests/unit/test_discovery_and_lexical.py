from __future__ import annotations

import os
from pathlib import Path

import pytest

from almanac.core.records import SearchFilters
from almanac.core.store.lexical import identifier_terms, named_codes, with_identifier_terms
from almanac.core.store.store import filter_sql, sql_str
from almanac.core.system.discovery import is_ignored_name, walk


@pytest.mark.parametrize(
    "name",
    [
        ".DS_Store",
        ".hidden.md",
        "~$report.docx",
        ".~lock.notes.odt#",
        "notes.md.swp",
        "a.tmp",
        "movie.part",
        "file.crdownload",
        "backup.txt~",
        "Thumbs.db",
    ],
)
def test_transient_and_hidden_files_are_ignored(name: str) -> None:
    assert is_ignored_name(name)


@pytest.mark.parametrize("name", ["report.docx", "notes.md", "tmp-notes.txt", "partial-refunds.md"])
def test_ordinary_files_are_not_ignored(name: str) -> None:
    assert not is_ignored_name(name)


def test_walk_skips_hidden_folders_and_reports_loops(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config.txt").write_text("x")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.md").write_text("x")
    (tmp_path / "a" / "~$doc.docx").write_text("x")
    os.symlink(tmp_path, tmp_path / "a" / "back")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.md")
    found = {f.path.relative_to(tmp_path).as_posix(): f.error for f in walk(tmp_path)}
    assert found == {
        "a/doc.md": "",
        "a/back": "symbolic link loop: folder already indexed",
        "dangling.md": "broken symbolic link",
    }


def test_identifier_terms() -> None:
    text = "Version 4.2.0 (2025-04-08) fixes NW-611 on x86_64, e.g. for sign-in; see v4.2.0."
    assert identifier_terms(text) == ["v420", "v20250408", "nw611", "x8664"]
    assert with_identifier_terms("plain words") == "plain words"
    assert with_identifier_terms("error NW-102").endswith("\nnw102")


def test_named_codes_have_a_letter_and_a_digit() -> None:
    text = "Error E-1042 on a TR-7L (firmware 4.2.0, 1.5 GB, at 10:30, sign-in, x86_64) E-1042"
    assert named_codes(text) == {"E-1042": "e1042", "TR-7L": "tr7l", "x86_64": "x8664"}
    # The compact term is the one the index carries for the same text.
    assert set(named_codes(text).values()) <= set(identifier_terms(text))


def test_sql_strings_are_escaped() -> None:
    assert sql_str("it's") == "'it''s'"
    where = filter_sql(SearchFilters(path_prefix="/docs/o'brien_100%", kinds=("PDF", ".md")))
    assert where is not None
    assert "'/docs/o''brien_100%'" in where  # exact match keeps the literal
    assert "LIKE '/docs/o''brien\\_100\\%/%'" in where  # wildcards in the folder name are escaped
    assert "kind IN ('pdf', 'md')" in where
    assert filter_sql(SearchFilters()) is None
