"""Ingestion: files -> sections -> chunks -> vectors -> the store, incrementally.

Three stages overlap so the embedder (the bottleneck) never waits: a reader thread parses and
chunks, the calling thread embeds, a writer thread commits. Queues between them are bounded, so
memory stays flat however many files arrive.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from almanac.core.documents import (
    DEFAULT_MAX_FILE_BYTES,
    READERS_VERSION,
    DocumentError,
    is_supported,
    kind_of,
    open_document_file,
    parse_document,
)
from almanac.core.documents.files import too_large
from almanac.core.embedding.embedding import Embedder, embedding_text
from almanac.core.indexing.chunking import Chunker
from almanac.core.indexing.writer_lock import exclusive_writer
from almanac.core.records import (
    Chunk,
    DocumentInfo,
    DocumentStatus,
    FileError,
    IngestProgress,
    IngestReport,
)
from almanac.core.store.lexical import LEXICAL_VERSION
from almanac.core.store.store import DocumentWrite, Store
from almanac.core.system.discovery import OUTSIDE_FOLDERS, Confinement, Found, path_key, walk

ProgressCallback = Callable[[IngestProgress], None]

_DONE = object()


class IngestCancelled(Exception):
    pass


@dataclass(slots=True)
class _Parsed:
    info: DocumentInfo
    chunks: list[Chunk]
    is_new: bool


@dataclass(slots=True)
class _Failed:
    info: DocumentInfo


@dataclass(slots=True)
class _Tally:
    started: float = field(default_factory=time.perf_counter)
    files_total: int = 0
    files_done: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    chunks_done: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    added: int = 0
    updated: int = 0
    failures: list[FileError] = field(default_factory=list)
    timings: dict[str, float] = field(
        default_factory=lambda: {
            "scan": 0.0,
            "parse": 0.0,
            "chunk": 0.0,
            "embed": 0.0,
            "write": 0.0,
        }
    )

    def progress(self, current: str = "") -> IngestProgress:
        return IngestProgress(
            files_total=self.files_total,
            files_done=self.files_done,
            files_failed=self.files_failed,
            files_skipped=self.files_skipped,
            chunks_done=self.chunks_done,
            chunks_embedded=self.chunks_embedded,
            elapsed=time.perf_counter() - self.started,
            current=current,
        )


def posix(path: Path | str) -> str:
    """A file's key in the knowledge base (valid text whatever bytes its name holds)."""
    return path_key(path)


class Ingestor:
    """The single writer of a knowledge base. Not re-entrant: one ``ingest`` call at a time."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        chunker: Chunker,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        embed_window: int = 256,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.max_file_bytes = max_file_bytes
        self.embed_window = embed_window
        self._lock = threading.Lock()
        self._fingerprint = self.pipeline_fingerprint()

    # -- public API ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        prune: bool = True,
        force: bool = False,
        roots: Sequence[Path] | None = None,
    ) -> IngestReport:
        """Index files and folders. With ``prune``, documents that vanished from a given folder are
        removed. Unchanged files (same sha256) cost one hash and nothing else.

        Nothing outside ``roots`` is read, whatever a symbolic link points to; by default the
        roots are the folders given, and the folder of each file given."""
        if roots is None:
            roots = [p if os.path.isdir(p) else Path(os.path.abspath(p)).parent for p in paths]
        roots = [Path(os.path.abspath(r)) for r in roots]
        with self._lock, exclusive_writer(self.store.kb_dir) as crashed:
            if crashed:
                # Only a crash between the chunk and document commits can leave orphans.
                self.store.sweep_orphans()
            return self._ingest(paths, progress, cancel or threading.Event(), prune, force, roots)

    def remove(self, paths: Sequence[Path]) -> int:
        """Forget files, or every document under folders. Returns how many were removed."""
        with self._lock, exclusive_writer(self.store.kb_dir):
            removed = self.store.remove_under([posix(p) for p in paths])
            self.store.maybe_maintain()
            return removed

    def pipeline_fingerprint(self) -> str:
        cfg = self.chunker.config
        parts = (
            READERS_VERSION,
            LEXICAL_VERSION,
            cfg.target_tokens,
            cfg.max_tokens,
            cfg.overlap_tokens,
            cfg.max_chars,
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

    # -- the pipeline -------------------------------------------------------------------------

    def _ingest(
        self,
        paths: Sequence[Path],
        progress: ProgressCallback | None,
        cancel: threading.Event,
        prune: bool,
        force: bool,
        roots: list[Path],
    ) -> IngestReport:
        tally = _Tally()
        scan_start = time.perf_counter()
        known = self.store.documents()
        confinement = Confinement(roots)
        found, vanished = self._scan(paths, known, prune, roots, confinement)
        tally.files_total = len(found)
        tally.timings["scan"] = time.perf_counter() - scan_start
        report_progress = progress or (lambda _p: None)
        report_progress(tally.progress())

        parsed_q: queue.Queue[object] = queue.Queue(maxsize=64)
        write_q: queue.Queue[object] = queue.Queue(maxsize=2)
        errors: list[BaseException] = []
        stop = threading.Event()  # cancel, a failed stage, or an exception here

        def stopping() -> bool:
            return stop.is_set() or cancel.is_set() or bool(errors)

        reader = threading.Thread(
            target=self._read_stage,
            args=(found, known, force, confinement, parsed_q, stopping, tally, errors),
            name="almanac-ingest-read",
            daemon=True,
        )
        writer = threading.Thread(
            target=self._write_stage,
            args=(write_q, tally, errors),
            name="almanac-ingest-write",
            daemon=True,
        )
        reader.start()
        writer.start()
        try:
            self._embed_stage(parsed_q, write_q, stopping, tally, report_progress)
        except BaseException:
            stop.set()
            raise
        finally:
            cancel_requested = cancel.is_set()
            if stopping():
                stop.set()
                _drain(parsed_q)
            reader.join()
            write_q.put(_DONE)
            writer.join()
        if errors:
            raise errors[0]

        removed = 0
        if not cancel_requested:
            removed = self.store.remove_documents(sorted(vanished))
        # The writer is idle now: index new rows, and compact after many small commits.
        self.store.maybe_maintain()
        report_progress(tally.progress())
        if cancel_requested:
            raise IngestCancelled("ingestion cancelled; everything indexed so far is kept")
        return IngestReport(
            added=tally.added,
            updated=tally.updated,
            unchanged=tally.files_skipped,
            removed=removed,
            failed=tuple(tally.failures),
            chunks_written=tally.chunks_done,
            chunks_embedded=tally.chunks_embedded,
            chunks_reused=tally.chunks_reused,
            seconds=time.perf_counter() - tally.started,
            timings=dict(tally.timings),
        )

    def _scan(
        self,
        paths: Sequence[Path],
        known: dict[str, DocumentInfo],
        prune: bool,
        roots: Sequence[Path],
        confinement: Confinement,
    ) -> tuple[list[Found], set[str]]:
        found: list[Found] = []
        vanished: set[str] = set()
        for raw in paths:
            path = Path(os.path.abspath(raw))
            if path.is_dir() and path.is_symlink() and not confinement.allows_path(path):
                found.append(_under_root(Found(path, path.parent, OUTSIDE_FOLDERS), roots))
            elif path.is_dir():
                seen_here = [_under_root(f, roots) for f in walk(path, confinement)]
                found.extend(seen_here)
                if prune:
                    present = {posix(f.path) for f in seen_here}
                    prefix = posix(path).rstrip("/") + "/"
                    vanished.update(p for p in known if p.startswith(prefix) and p not in present)
            elif path.exists() or path.is_symlink():
                found.append(_under_root(Found(path, path.parent), roots))
            else:
                raise FileNotFoundError(f"no such file or folder: {raw}")
        # One file named twice (a folder and a file inside it) is still one document.
        unique: dict[str, Found] = {}
        for item in found:
            unique.setdefault(posix(item.path), item)
        return list(unique.values()), vanished

    def _read_stage(
        self,
        found: list[Found],
        known: dict[str, DocumentInfo],
        force: bool,
        confinement: Confinement,
        out: queue.Queue[object],
        stopping: Callable[[], bool],
        tally: _Tally,
        errors: list[BaseException],
    ) -> None:
        try:
            for item in found:
                if stopping():
                    break
                result = self._read_one(item, known, force, confinement, tally)
                if result is not None:
                    out.put(result)
        except BaseException as exc:  # surfaced on the calling thread
            errors.append(exc)
        finally:
            out.put(_DONE)

    def _read_one(
        self,
        item: Found,
        known: dict[str, DocumentInfo],
        force: bool,
        confinement: Confinement,
        tally: _Tally,
    ) -> _Parsed | _Failed | None:
        key = posix(item.path)
        source = posix(item.source)
        rel = os.path.relpath(key, source)
        kind = kind_of(item.path) or item.path.suffix.lower().lstrip(".")
        previous = known.get(key)

        def failure(message: str, sha: str = "", size: int = 0, mtime: float = 0.0) -> _Failed:
            return _Failed(
                DocumentInfo(
                    key,
                    source,
                    rel,
                    sha,
                    size,
                    mtime,
                    kind,
                    DocumentStatus.ERROR,
                    message,
                    0,
                    time.time(),
                    self._fingerprint,
                )
            )

        if item.error:
            return failure(item.error)
        if not is_supported(item.path):
            return failure(f"unsupported file type {item.path.suffix or '(no extension)'}")
        start = time.perf_counter()
        size, mtime, sha = 0, 0.0, ""
        try:
            # One descriptor for the hash and the read: what is hashed is what is parsed, and a
            # FIFO, a device or a link out of the folders is refused on the descriptor itself.
            with open_document_file(item.path, confinement) as opened:
                size, mtime = opened.size, opened.mtime
                if size > self.max_file_bytes:
                    # Hashing hundreds of megabytes only to refuse them would stall the queue.
                    return failure(str(too_large(size, self.max_file_bytes)), "", size, mtime)
                sha = opened.sha256()
                # A document made by an older reader or chunker is re-read (its vectors are
                # reused by hash).
                if (
                    previous is not None
                    and previous.sha256 == sha
                    and previous.pipeline == self._fingerprint
                    and not force
                ):
                    tally.files_skipped += 1
                    tally.files_done += 1
                    return None
                data = opened.read_all(self.max_file_bytes)
            document = parse_document(item.path, data)
            del data
        except DocumentError as exc:
            return failure(str(exc), sha, size, mtime)
        except OSError as exc:
            return failure(f"cannot read file: {exc.strerror or exc}", sha, size, mtime)
        except Exception as exc:  # a reader bug must cost one file, not the whole run
            return failure(
                f"could not read this file ({type(exc).__name__}: {exc})", sha, size, mtime
            )
        parsed_at = time.perf_counter()
        chunks = self.chunker.chunk_document(key, document)
        tally.timings["parse"] += parsed_at - start
        tally.timings["chunk"] += time.perf_counter() - parsed_at
        warning = "; ".join(document.warnings)
        info = DocumentInfo(
            key,
            source,
            rel,
            sha,
            size,
            mtime,
            document.kind,
            DocumentStatus.INDEXED,
            warning,
            len(chunks),
            time.time(),
            self._fingerprint,
        )
        return _Parsed(info, chunks, is_new=previous is None)

    def _embed_stage(
        self,
        parsed_q: queue.Queue[object],
        write_q: queue.Queue[object],
        stopping: Callable[[], bool],
        tally: _Tally,
        report: ProgressCallback,
    ) -> None:
        pending: list[_Parsed] = []
        failed: list[_Failed] = []
        pending_chunks = 0
        for item in _until_done(parsed_q):
            if stopping():
                return
            if isinstance(item, _Failed):
                failed.append(item)
                continue
            assert isinstance(item, _Parsed)
            pending.append(item)
            pending_chunks += len(item.chunks)
            if pending_chunks >= self.embed_window:
                self._flush(pending, failed, write_q, tally, report)
                pending, failed, pending_chunks = [], [], 0
        if not stopping():
            self._flush(pending, failed, write_q, tally, report)

    def _flush(
        self,
        docs: list[_Parsed],
        failed: list[_Failed],
        write_q: queue.Queue[object],
        tally: _Tally,
        report: ProgressCallback,
    ) -> None:
        if not docs and not failed:
            return
        start = time.perf_counter()
        all_chunks = [c for d in docs for c in d.chunks]
        vectors = self.store.vectors_for_hashes(c.chunk_hash for c in all_chunks)
        reused = sum(1 for c in all_chunks if c.chunk_hash in vectors)
        todo: dict[str, str] = {}
        for chunk in all_chunks:
            if chunk.chunk_hash not in vectors:
                todo.setdefault(chunk.chunk_hash, embedding_text(chunk.heading_path, chunk.text))
        if todo:
            order = list(todo)
            embedded = self.embedder.embed([todo[h] for h in order])
            vectors.update(zip(order, embedded, strict=True))
        tally.timings["embed"] += time.perf_counter() - start
        tally.chunks_embedded += len(todo)
        tally.chunks_reused += reused
        writes = [
            DocumentWrite(
                d.info,
                d.chunks,
                np.stack([vectors[c.chunk_hash] for c in d.chunks])
                if d.chunks
                else np.zeros((0, self.embedder.dim), dtype=np.float32),
            )
            for d in docs
        ]
        write_q.put((writes, [f.info for f in failed]))
        for d in docs:
            tally.files_done += 1
            tally.chunks_done += len(d.chunks)
            if d.is_new:
                tally.added += 1
            else:
                tally.updated += 1
        for f in failed:
            tally.files_done += 1
            tally.files_failed += 1
            tally.failures.append(FileError(f.info.path, f.info.error))
        report(tally.progress(docs[-1].info.rel_path if docs else ""))

    def _write_stage(
        self, write_q: queue.Queue[object], tally: _Tally, errors: list[BaseException]
    ) -> None:
        for item in _until_done(write_q):
            if errors:
                continue
            writes, failures = cast(tuple[list[DocumentWrite], list[DocumentInfo]], item)
            start = time.perf_counter()
            try:
                self.store.write_documents(writes)
                self.store.record_failures(failures)
            except BaseException as exc:
                errors.append(exc)
            tally.timings["write"] += time.perf_counter() - start


def _under_root(item: Found, roots: Sequence[Path]) -> Found:
    """The same file has the same source whether a folder or the file alone was ingested (a
    live-sync batch names files one by one): the innermost root that holds it."""
    best: Path | None = None
    for root in roots:
        inside = item.path == root or root in item.path.parents
        if inside and (best is None or len(root.parts) > len(best.parts)):
            best = root
    return item if best is None or best == item.source else Found(item.path, best, item.error)


def _until_done(q: queue.Queue[object]) -> Iterator[object]:
    while True:
        item = q.get()
        if item is _DONE:
            return
        yield item


def _drain(q: queue.Queue[object]) -> None:
    """Unblock a producer stuck on a full queue after the consumer stopped."""
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
