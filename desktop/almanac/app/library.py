"""The library use cases both front ends share: add documents (copied into the first documents
folder under a name that never overwrites, or indexed where they are), re-index, remove. Every
write goes through the Ingestor's one writer queue (core.indexing.writer); when one has changed the
index, ``on_change`` hears what changed, so a front end refreshes on one notification instead of
after each call site.

Removing and including again are also functions of their own (:func:`remove_documents`,
:func:`include_named`), shared by the window and the command line: ``almanac remove`` removes
through them without loading the embedder (:class:`IndexEditor`), ``almanac ingest`` of a removed
path includes it again."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from almanac.core.documents import is_supported
from almanac.core.indexing.exclusions import EXCLUSIONS_FILE, Exclusions
from almanac.core.indexing.writer import IndexWriter, WaitCallback
from almanac.core.records import IngestReport
from almanac.core.system.discovery import key_path, path_key

if TYPE_CHECKING:
    # The ingestor and the store load numpy and LanceDB: the desktop window imports this module
    # before it is on screen, and they load behind it.
    from almanac.core.indexing.ingest import Ingestor, ProgressCallback


class TakesOver(Protocol):
    """A live folder sync (core.indexing.sync.FolderSync): files written into a folder it watches
    are left to it, so they are indexed once."""

    def take_over(self, paths: Iterable[Path]) -> list[Path]: ...


@dataclass(frozen=True, slots=True)
class LibraryChange:
    """What one write changed: paths indexed (added or re-indexed) and index keys removed."""

    indexed: tuple[Path, ...] = ()
    removed: tuple[str, ...] = ()
    report: IngestReport | None = field(default=None, compare=False)


LibraryListener = Callable[[LibraryChange], None]


def unique_destination(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (2).ext``, ``name (3).ext``… when taken: never overwrite."""
    candidate = folder / name
    if not candidate.exists() and not candidate.is_symlink():
        return candidate
    stem, suffix = os.path.splitext(name)
    n = 2
    while True:
        candidate = folder / f"{stem} ({n}){suffix}"
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
        n += 1


def is_inside(path: Path, roots: Sequence[Path]) -> Path | None:
    """The resolved ``path`` when it lies inside one of ``roots`` (both resolved), else None."""
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    for root in roots:
        try:
            base = root.resolve(strict=False)
        except (OSError, RuntimeError):
            continue
        if resolved == base or resolved.is_relative_to(base):
            return resolved
    return None


class ExcludingIndex(Protocol):
    """What removing needs: the knowledge base's exclusion list and a write that forgets
    documents (an :class:`~almanac.core.indexing.ingest.Ingestor`, or an :class:`IndexEditor`)."""

    exclusions: Exclusions

    def remove(
        self,
        paths: Sequence[Path],
        *,
        cancel: threading.Event | None = None,
        on_wait: WaitCallback | None = None,
    ) -> int: ...


class IndexEditor:
    """A knowledge base opened for removals without loading its embedder (``almanac remove``):
    the same writer (it waits for another process updating the index, and repairs what a
    crashed write left), the same exclusion list and the same removal as its Ingestor's."""

    def __init__(self, kb_dir: Path) -> None:
        from almanac.core.store.store import Store

        self.store = Store.open_existing(kb_dir)
        self.exclusions = Exclusions(kb_dir / EXCLUSIONS_FILE)
        self.writer = IndexWriter(kb_dir, on_crash=self.store.sweep_orphans)

    def remove(
        self,
        paths: Sequence[Path],
        *,
        cancel: threading.Event | None = None,
        on_wait: WaitCallback | None = None,
    ) -> int:
        from almanac.core.indexing.ingest import remove_paths

        return remove_paths(self.store, self.writer, paths, cancel=cancel, on_wait=on_wait)


def remove_documents(
    index: ExcludingIndex,
    keys: Sequence[str],
    *,
    cancel: threading.Event | None = None,
    on_wait: WaitCallback | None = None,
) -> int:
    """The remove use case: out of the index, kept on disk, and excluded until included again
    (otherwise the next reconciliation with the folders - the app's start, live sync, ``almanac
    watch``, a folder ingest - would index it again). A folder's key removes and excludes
    everything under it. Returns how many documents were removed; a key that removed nothing
    (or a removal that failed or was cancelled) leaves no new exclusion behind."""
    keys = list(dict.fromkeys(k for k in keys if k))
    exclusions = index.exclusions
    # Excluded before the write, so a reconciliation queued behind it can't index them again.
    new = [k for k in keys if not exclusions.excludes(k)]
    exclusions.add(new)
    try:
        removed = index.remove([key_path(k) for k in keys], cancel=cancel, on_wait=on_wait)
    except BaseException:
        exclusions.forget(new)
        raise
    if removed == 0:
        exclusions.forget(new)
    return removed


def include_named(exclusions: Exclusions, paths: Iterable[Path]) -> list[str]:
    """Include again what the user names: each path that is itself an excluded entry (a removed
    file, or a removed folder with everything excluded under it). A folder that merely holds
    removed documents includes none of them: a folder ingest is also how the index is
    reconciled with the disk, and must not undo removals. Returns the keys included again."""
    listed = set(exclusions.keys())
    again = [k for k in dict.fromkeys(path_key(p) for p in paths) if k in listed]
    if again:
        exclusions.discard(again)
    return again


def excluded_within(exclusions: Exclusions, paths: Iterable[Path]) -> list[str]:
    """The excluded entries an ingest of ``paths`` leaves out: at or under a named path, or a
    removed folder that holds a named path."""
    keys = list(exclusions.keys())
    found: set[str] = set()
    for named in {path_key(p) for p in paths}:
        prefix = named.rstrip("/") + "/"
        found.update(k for k in keys if k == named or k.startswith(prefix))
        found.update(k for k in keys if named.startswith(k.rstrip("/") + "/"))
    return sorted(found)


def _ignore_unsupported(folder: str, names: list[str]) -> set[str]:
    return {
        n for n in names if not os.path.isdir(os.path.join(folder, n)) and not is_supported(Path(n))
    }


class Library:
    """The documents folders and the index over them. Methods block until their write is done
    (front ends call them from a worker thread) and may be called from any thread."""

    def __init__(
        self,
        ingestor: Ingestor,
        folders: Sequence[Path],
        *,
        copy_added: bool = True,
        sync: TakesOver | None = None,
        on_change: LibraryListener | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.folders = [Path(f) for f in folders]
        self.copy_added = copy_added
        self.sync = sync
        self._listeners: list[LibraryListener] = [on_change] if on_change else []
        self._lock = threading.Lock()

    def subscribe(self, listener: LibraryListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _changed(self, change: LibraryChange) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(change)

    def add(
        self,
        paths: Sequence[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        on_copy: Callable[[Path], None] | None = None,
    ) -> IngestReport:
        """Copy into the first documents folder (unless copying is off or the path already lies
        in a documents folder), then index. Adding a document again brings back one that was
        removed (excluded). ``on_copy`` hears each copy as soon as it is written (before it is
        indexed: the window asks about copies that then fail to index)."""
        self.ingestor.exclusions.discard(path_key(p) for p in paths)
        copy_to = self.folders[0] if self.copy_added and self.folders else None
        targets: list[Path] = []
        for path in paths:
            if copy_to is None or is_inside(path, self.folders) is not None:
                targets.append(path)
                continue
            copy_to.mkdir(parents=True, exist_ok=True)
            dest = unique_destination(copy_to, path.name)
            if path.is_dir():
                shutil.copytree(path, dest, ignore=_ignore_unsupported)
            else:
                shutil.copy2(path, dest)
            targets.append(dest)
            if on_copy is not None:
                on_copy(dest)
        # What a running live sync watches is left to it: the copy's own change events would
        # make it index those files a second time.
        mine = self.sync.take_over(targets) if self.sync is not None else targets
        report = IngestReport()
        if mine:
            report = self.ingestor.ingest(mine, progress=progress, cancel=cancel, prune=False)
        self._changed(LibraryChange(indexed=tuple(targets), report=report))
        return report

    def reindex(
        self,
        paths: Sequence[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> IngestReport:
        present = [p for p in paths if p.exists()]
        report = self.ingestor.ingest(
            present, progress=progress, cancel=cancel, prune=False, force=True
        )
        self._changed(LibraryChange(indexed=tuple(present), report=report))
        return report

    def remove(
        self,
        keys: Sequence[str],
        *,
        cancel: threading.Event | None = None,
        on_wait: WaitCallback | None = None,
    ) -> int:
        """Out of the index, kept on disk, and excluded until added or included again
        (:func:`remove_documents`). Returns how many were removed."""
        removed = remove_documents(self.ingestor, keys, cancel=cancel, on_wait=on_wait)
        self._changed(LibraryChange(removed=tuple(keys)))
        return removed

    def include_again(
        self,
        keys: Sequence[str],
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> IngestReport:
        """Excluded documents back into the index (those still on disk): each key, and what is
        excluded under a key that is a folder."""
        self.ingestor.exclusions.discard(keys)
        present = [p for p in (key_path(k) for k in keys) if p.exists()]
        report = IngestReport()
        if present:
            # Read within the documents folders (as live sync does) when they hold them all.
            inside = self.folders and all(is_inside(p, self.folders) for p in present)
            report = self.ingestor.ingest(
                present,
                progress=progress,
                cancel=cancel,
                prune=False,
                roots=self.folders if inside else None,
            )
        self._changed(LibraryChange(indexed=tuple(present), report=report))
        return report
