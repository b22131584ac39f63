"""The reading mechanism itself: what is checked is the opened descriptor, so a file swapped
between the look and the open (a race an attacker can win on a shared folder) is refused too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from almanac.core.documents import (
    NotRegularFileError,
    OutsideFoldersError,
    UnreadableFileError,
    read_document,
)
from almanac.core.documents import files as files_module
from almanac.core.system.discovery import Confinement, display_key, key_path, path_key


def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    regular = docs / "regular.txt"
    regular.write_text("plain text", encoding="utf-8")
    os.mkfifo(docs / "p.txt")
    real_stat = os.stat
    # The look before the open sees a regular file; the open meets the FIFO.
    monkeypatch.setattr(files_module.os, "stat", lambda p, *a, **k: real_stat(regular))
    with pytest.raises(NotRegularFileError, match="named pipe"):
        read_document(docs / "p.txt")


def test_a_file_swapped_for_a_link_after_the_check_is_refused(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret-token-44", encoding="utf-8")
    os.symlink(secret, docs / "notes.txt")
    # realpath ran while notes.txt was still a plain file: the open must not follow the link.
    monkeypatch.setattr(files_module.os.path, "realpath", lambda p: os.fspath(p))
    with pytest.raises(UnreadableFileError, match="changed while it was being opened"):
        read_document(docs / "notes.txt", confinement=Confinement([docs]))


def test_a_folder_swapped_for_a_link_after_the_check_is_refused(
    docs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret-token-45", encoding="utf-8")
    os.symlink(outside, docs / "sub")
    # realpath ran while sub/ was still a folder of docs/; the kernel says where the open landed.
    monkeypatch.setattr(files_module.os.path, "realpath", lambda p: os.fspath(p))
    with pytest.raises(OutsideFoldersError, match="outside the indexed folders"):
        read_document(docs / "sub" / "secret.txt", confinement=Confinement([docs]))


def test_a_link_inside_the_folders_is_read(docs: Path) -> None:
    (docs / "a.txt").write_text("Inside text.", encoding="utf-8")
    os.symlink(docs / "a.txt", docs / "b.txt")
    doc = read_document(docs / "b.txt", confinement=Confinement([docs]))
    assert doc.sections[0].text == "Inside text."


def test_keys_of_non_utf8_names_are_text_and_reversible(docs: Path) -> None:
    raw = os.fsencode(docs) + b"/caf\xe9 \xff.md"
    with open(raw, "w", encoding="utf-8") as f:
        f.write("x")
    path = Path(os.fsdecode(raw))
    key = path_key(path)
    key.encode("utf-8")  # what LanceDB needs: no lone surrogate left
    assert key_path(key) == path and key_path(key).exists()
    assert display_key(key).endswith("/caf\\xe9 \\xff.md")
    assert path_key(docs / "plain.md") == (docs / "plain.md").as_posix()  # others unchanged
