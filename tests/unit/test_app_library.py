"""The library and model-selection use cases of the application layer: copies never overwrite,
files a live sync watches are left to it, every write is announced once, a removed document is
excluded until added again, an added model is saved in Settings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from almanac.app.library import (
    Library,
    LibraryChange,
    excluded_within,
    include_named,
    remove_documents,
    unique_destination,
)
from almanac.app.models import ModelSelection
from almanac.app.services import ModelChoice
from almanac.app.settings import Settings, SettingsStore
from almanac.core.indexing.exclusions import Exclusions
from almanac.core.indexing.ingest import Ingestor
from almanac.core.records import IngestReport
from almanac.core.system.discovery import path_key


class _Ingestor:
    """Records what the library asks of the index writer."""

    def __init__(self, kb: Path) -> None:
        self.exclusions = Exclusions(kb / "excluded.json")
        self.ingested: list[tuple[list[Path], dict[str, Any]]] = []
        self.removed: list[list[Path]] = []

    def ingest(self, paths: Sequence[Path], **options: Any) -> IngestReport:
        self.ingested.append((list(paths), options))
        return IngestReport()

    def remove(self, paths: Sequence[Path], **_options: Any) -> int:
        self.removed.append(list(paths))
        return len(paths)


class _Sync:
    def __init__(self, watched: Path) -> None:
        self.watched = watched
        self.taken: list[Path] = []

    def take_over(self, paths: Iterable[Path]) -> list[Path]:
        others = []
        for p in paths:
            (self.taken if self.watched in p.parents else others).append(p)
        return others


def _library(tmp_path: Path, **kwargs: Any) -> tuple[Library, _Ingestor, list[LibraryChange]]:
    ingestor = _Ingestor(tmp_path)
    changes: list[LibraryChange] = []
    docs = tmp_path / "docs"
    library = Library(cast(Ingestor, ingestor), [docs], on_change=changes.append, **kwargs)
    return library, ingestor, changes


def test_unique_destination_never_overwrites(tmp_path: Path) -> None:
    assert unique_destination(tmp_path, "a.md") == tmp_path / "a.md"
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "a (2).md").write_text("x")
    assert unique_destination(tmp_path, "a.md") == tmp_path / "a (3).md"


def test_add_copies_under_a_new_name_and_announces_once(tmp_path: Path) -> None:
    library, ingestor, changes = _library(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "faq.md").write_text("# FAQ\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text("# Mine\n")
    copied: list[Path] = []
    library.add([outside / "faq.md"], on_copy=copied.append)
    copy = tmp_path / "docs" / "faq (2).md"
    assert copied == [copy]  # heard before indexing (the window tracks its fresh copies)
    assert copy.read_text() == "# FAQ\n"
    assert (tmp_path / "docs" / "faq.md").read_text() == "# Mine\n"
    assert ingestor.ingested == [([copy], {"progress": None, "cancel": None, "prune": False})]
    assert [c.indexed for c in changes] == [(copy,)]


def test_add_in_place_when_copying_is_off_or_already_inside(tmp_path: Path) -> None:
    library, ingestor, _ = _library(tmp_path, copy_added=False)
    outside = tmp_path / "elsewhere.md"
    outside.write_text("x")
    library.add([outside])
    assert ingestor.ingested[0][0] == [outside]
    assert not (tmp_path / "docs").exists()


def test_files_a_live_sync_watches_are_left_to_it(tmp_path: Path) -> None:
    sync = _Sync(tmp_path / "docs")
    library, ingestor, changes = _library(tmp_path, sync=sync)
    dropped = tmp_path / "drop.md"
    dropped.write_text("x")
    library.add([dropped])
    assert sync.taken == [tmp_path / "docs" / "drop.md"]
    assert ingestor.ingested == []  # indexed once, by the sync
    assert len(changes) == 1


def test_remove_excludes_until_added_again(tmp_path: Path) -> None:
    library, ingestor, changes = _library(tmp_path)
    doc = tmp_path / "docs" / "old.md"
    key = path_key(doc)
    assert library.remove([key]) == 1
    assert ingestor.exclusions.excludes(key)
    assert ingestor.removed == [[doc]]
    assert changes[-1].removed == (key,)
    doc.parent.mkdir()
    doc.write_text("x")
    library.add([doc])
    assert not ingestor.exclusions.excludes(key)


def test_a_remove_that_removed_nothing_excludes_nothing(tmp_path: Path) -> None:
    ingestor = _Ingestor(tmp_path)
    ingestor.remove = lambda paths, **_options: 0  # type: ignore[method-assign]
    older = path_key(tmp_path / "docs" / "a" / "kept-out.md")
    ingestor.exclusions.add([older])
    folder = path_key(tmp_path / "docs" / "a")
    assert remove_documents(cast(Ingestor, ingestor), [folder, older]) == 0
    assert ingestor.exclusions.keys() == [older]  # the earlier exclusion stays


def test_a_failed_remove_excludes_nothing(tmp_path: Path) -> None:
    ingestor = _Ingestor(tmp_path)

    def busy(_paths: Sequence[Path], **_options: Any) -> int:
        raise RuntimeError("gave up waiting")

    ingestor.remove = busy  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        remove_documents(cast(Ingestor, ingestor), [path_key(tmp_path / "x.md")])
    assert ingestor.exclusions.keys() == []


def test_naming_a_removed_path_includes_it_again_but_its_folder_does_not(tmp_path: Path) -> None:
    exclusions = Exclusions(tmp_path / "excluded.json")
    docs = tmp_path / "docs"
    one, other = docs / "one.md", docs / "sub" / "other.md"
    exclusions.add([path_key(one), path_key(other)])
    # The folder ingest that reconciles the index with the disk leaves both out.
    assert include_named(exclusions, [docs]) == []
    assert excluded_within(exclusions, [docs]) == sorted([path_key(one), path_key(other)])
    assert include_named(exclusions, [one]) == [path_key(one)]
    assert exclusions.keys() == [path_key(other)]
    # A removed folder named again brings back everything under it; a file in it does not.
    exclusions.add([path_key(docs / "sub")])
    assert include_named(exclusions, [other]) == [path_key(other)]
    assert exclusions.excludes(path_key(other))
    assert excluded_within(exclusions, [other]) == [path_key(docs / "sub")]
    assert include_named(exclusions, [docs / "sub"]) == [path_key(docs / "sub")]
    assert exclusions.keys() == []


def test_exclusions_see_what_another_process_wrote(tmp_path: Path) -> None:
    app = Exclusions(tmp_path / "excluded.json")
    cli = Exclusions(tmp_path / "excluded.json")  # `almanac remove` while the app runs
    cli.add(["/docs/a.md"])
    assert app.excludes("/docs/a.md")
    app.add(["/docs/b.md"])  # a change keeps what the other wrote
    assert cli.keys() == ["/docs/a.md", "/docs/b.md"]
    cli.discard(["/docs/a.md"])
    assert app.keys() == ["/docs/b.md"]


def test_include_again_discards_and_indexes_what_is_present(tmp_path: Path) -> None:
    library, ingestor, changes = _library(tmp_path)
    present = tmp_path / "docs" / "back.md"
    present.parent.mkdir()
    present.write_text("x")
    keys = [path_key(present), path_key(tmp_path / "docs" / "gone.md")]
    ingestor.exclusions.add(keys)
    library.include_again(keys)
    assert ingestor.exclusions.keys() == []
    assert ingestor.ingested == [
        (
            [present],
            {
                "progress": None,
                "cancel": None,
                "prune": False,
                "roots": [tmp_path / "docs"],
            },
        )
    ]
    assert changes[-1].indexed == (present,)


def test_reindex_forces_the_present_files(tmp_path: Path) -> None:
    library, ingestor, changes = _library(tmp_path)
    present = tmp_path / "here.md"
    present.write_text("x")
    library.reindex([present, tmp_path / "gone.md"])
    assert ingestor.ingested == [
        ([present], {"progress": None, "cancel": None, "prune": False, "force": True})
    ]
    assert changes[0].indexed == (present,)


def test_an_added_model_is_saved_and_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from almanac.app import models

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "add_model", lambda path, progress=None: _Added(path))
    store = SettingsStore(tmp_path / "settings.json")
    seen: list[ModelChoice] = []
    selection = ModelSelection(store, Settings(), on_change=seen.append)
    _, saved = selection.add(gguf)
    assert saved.model_path == str(gguf)
    assert store.load().model_path == str(gguf)
    assert [c.path for c in seen] == [gguf]
    assert selection.current().origin == "explicit"


class _Added:
    def __init__(self, path: Path) -> None:
        self.path = path
