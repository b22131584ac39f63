"""Ingestion: files -> sections -> chunks -> vectors -> the store, incrementally.

Three stages overlap so the embedder (the bottleneck) never waits: a reader thread parses and
chunks, the calling thread embeds, a writer thread commits. Queues between them are bounded, so
memory stays flat however many files arrive.
"""

from __future__ import annotations

import dataclasses
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
    DEFAULT_MAX_SCAN_BYTES,
    READERS_VERSION,
    DocumentError,
    is_supported,
    kind_of,
    ocr_pending,
    open_document_file,
    parse_document,
    size_limit,
)
from almanac.core.documents.files import too_large
from almanac.core.embedding.embedding import Embedder, embedding_text
from almanac.core.indexing.chunking import Chunker
from almanac.core.indexing.exclusions import EXCLUSIONS_FILE, Exclusions
from almanac.core.indexing.ocr_lane import OcrLane
from almanac.core.indexing.writer import IndexWriter, WaitCallback
from almanac.core.indexing.writer_lock import WriteCancelled
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
from almanac.core.system.discovery import (
    OUTSIDE_FOLDERS,
    Confinement,
    Found,
    key_path,
    path_key,
    walk,
)

ProgressCallback = Callable[[IngestProgress], None]

_DONE = object()
# Texts embedded between two looks at the cancel event.
_EMBED_SLICE = 64


# One exception for every cancelled write, whether it was stopped while queued or mid-ingest.
IngestCancelled = WriteCancelled


@dataclass(slots=True)
class _Parsed:
    info: DocumentInfo
    chunks: list[Chunk]
    is_new: bool


@dataclass(slots=True)
class _Failed:
    info: DocumentInfo


@dataclass(slots=True)
class _Deferred:
    """A scan handed to the OCR lane: its row says ``pending`` until the lane writes it."""

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


def remove_paths(
    store: Store,
    writer: IndexWriter,
    paths: Sequence[Path],
    *,
    cancel: threading.Event | None = None,
    on_wait: WaitCallback | None = None,
) -> int:
    """Forget files, or every document under folders, as one job of the knowledge base's writer
    (also for a process that has no Ingestor: ``almanac remove``). Returns how many went."""
    keys = [posix(p) for p in paths]

    def job(_stop: threading.Event) -> int:
        removed = store.remove_under(keys)
        store.maybe_maintain()
        return removed

    return writer.run("remove", job, cancel=cancel, on_wait=on_wait)


class Ingestor:
    """The ingestion pipeline of a knowledge base, and its one writer (``self.writer``).

    ``ingest``, ``remove`` and ``apply_changes`` may be called from any thread: each is a job on
    the writer's queue, so concurrent callers take turns and never see the cross-process lock of
    their own process. They block until their job is done; a cancel event ends a queued job at
    once and a running one early."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        chunker: Chunker,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES,
        embed_window: int = 256,
    ) -> None:
        """``max_scan_bytes``: the limit of the types that can hold page images (a scanned PDF
        is ~0.9 MB a page); ``max_file_bytes``: every other type's."""
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.max_file_bytes = max_file_bytes
        self.max_scan_bytes = max_scan_bytes
        self.embed_window = embed_window
        self._fingerprint = self.pipeline_fingerprint()
        # What the user removed but kept on disk stays out, whichever path finds it again.
        self.exclusions = Exclusions(store.kb_dir / EXCLUSIONS_FILE)
        # Only a crash between the chunk and document commits can leave orphans.
        self.writer = IndexWriter(store.kb_dir, on_crash=store.sweep_orphans)
        # Scans are read by OCR outside the writer (seconds a page), so they never hold back the
        # queue: see ocr_lane.py. The read stage defers them; the lane writes them when read.
        self.ocr_lane = OcrLane(self._index_after_ocr, max_file_bytes=max_scan_bytes)

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
        on_wait: WaitCallback | None = None,
        wait_for_ocr: bool = True,
    ) -> IngestReport:
        """Index files and folders. With ``prune``, documents that vanished from a given folder are
        removed. Unchanged files (same sha256) cost one hash and nothing else.

        Nothing outside ``roots`` is read, whatever a symbolic link points to; by default the
        roots are the folders given, and the folder of each file given. ``on_wait(message)`` is
        told when the write must wait for another process updating the knowledge base."""
        found_roots = self._roots(paths, roots)
        mark = self.ocr_lane.reports_mark()
        report = self.writer.run(
            "ingest",
            lambda stop: self._ingest(paths, progress, stop, prune, force, found_roots),
            cancel=cancel,
            on_wait=on_wait,
        )
        # Live sync passes False: its reconciliation must not wait minutes for a scan.
        return self._with_ocr(report, mark, progress, cancel) if wait_for_ocr else report

    def _with_ocr(
        self,
        report: IngestReport,
        mark: int,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> IngestReport:
        """A blocking ingest returns with its scans indexed too: wait for the OCR lane (showing
        its pages as progress) and add its writes to the report."""
        stop = cancel or threading.Event()
        while self.ocr_lane.busy:
            if stop.is_set():
                self.ocr_lane.cancel()
                raise IngestCancelled("ingestion cancelled; everything indexed so far is kept")
            if progress is not None:
                lane = self.ocr_lane.progress
                name = os.path.basename(lane.current)
                current = f"OCR {name}: page {lane.pages_done}/{lane.pages_total}" if name else ""
                progress(
                    IngestProgress(
                        report.added + report.updated + report.unchanged + len(report.failed),
                        report.added + report.updated + report.unchanged + len(report.failed),
                        len(report.failed),
                        report.unchanged,
                        report.chunks_written,
                        report.chunks_embedded,
                        report.seconds,
                        current,
                    )
                )
            self.ocr_lane.wait_idle(stop, poll_s=0.5)
        for extra in self.ocr_lane.reports_since(mark):
            report = dataclasses.replace(
                report,
                added=report.added + extra.added,
                updated=report.updated + extra.updated,
                failed=report.failed + extra.failed,
                chunks_written=report.chunks_written + extra.chunks_written,
                chunks_embedded=report.chunks_embedded + extra.chunks_embedded,
                chunks_reused=report.chunks_reused + extra.chunks_reused,
                seconds=report.seconds + extra.seconds,
            )
        return report

    def _index_after_ocr(
        self, path: Path, roots: Sequence[Path], stop: threading.Event
    ) -> IngestReport | None:
        """The OCR lane's write: the file again, its pages now in the OCR cache."""
        try:
            return self.writer.run(
                "ingest after OCR",
                lambda s: self._ingest([path], None, s, False, False, list(roots)),
                cancel=stop,
            )
        except IngestCancelled:
            return None

    def remove(
        self,
        paths: Sequence[Path],
        *,
        cancel: threading.Event | None = None,
        on_wait: WaitCallback | None = None,
    ) -> int:
        """Forget files, or every document under folders. Returns how many were removed."""
        return remove_paths(self.store, self.writer, paths, cancel=cancel, on_wait=on_wait)

    def apply_changes(
        self,
        files: Sequence[Path],
        vanished: Sequence[str],
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        roots: Sequence[Path] | None = None,
        on_wait: WaitCallback | None = None,
    ) -> tuple[IngestReport | None, int]:
        """One live-sync batch as one write: index ``files`` (new and changed paths first, so a
        renamed file's vectors, still stored under its old path, are reused), then forget every
        document at or under the ``vanished`` paths that is still gone from the disk. Returns
        the ingest's report (None without files) and how many documents were removed."""
        found_roots = self._roots(files, roots) if files else []

        def job(stop: threading.Event) -> tuple[IngestReport | None, int]:
            report = None
            if files:
                report = self._ingest(files, progress, stop, False, False, found_roots)
            removed = self._remove_vanished(vanished) if vanished else 0
            return report, removed

        return self.writer.run("sync batch", job, cancel=cancel, on_wait=on_wait)

    def _remove_vanished(self, vanished: Sequence[str]) -> int:
        docs = self.store.documents()  # read once, not once per path: a folder may hold 10,000
        prefixes = tuple(v.rstrip("/") + "/" for v in vanished)
        gone = set(vanished)
        doomed = sorted(p for p in docs if p in gone or p.startswith(prefixes))
        # Re-check the disk under the lock: a path that came back since is not a delete.
        doomed = [p for p in doomed if not os.path.lexists(key_path(p))]
        return self.store.remove_documents(doomed)

    @staticmethod
    def _roots(paths: Sequence[Path], roots: Sequence[Path] | None) -> list[Path]:
        if roots is None:
            roots = [p if os.path.isdir(p) else Path(os.path.abspath(p)).parent for p in paths]
        return [Path(os.path.abspath(r)) for r in roots]

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

        if cancel_requested:
            # Maintenance can take seconds and whoever cancelled is waiting (closing the app):
            # the next write session does it.
            report_progress(tally.progress())
            raise IngestCancelled("ingestion cancelled; everything indexed so far is kept")
        removed = self.store.remove_documents(sorted(vanished))
        # The writer is idle now: index new rows, and compact after many small commits.
        self.store.maybe_maintain()
        report_progress(tally.progress())
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
            key = posix(item.path)
            if not self.exclusions.excludes(key):
                unique.setdefault(key, item)
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
    ) -> _Parsed | _Failed | _Deferred | None:
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
                limit = size_limit(item.path, self.max_file_bytes, self.max_scan_bytes)
                if size > limit:
                    # Hashing hundreds of megabytes only to refuse them would stall the queue.
                    return failure(str(too_large(size, limit)), "", size, mtime)
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
                data = opened.read_all(limit)
            if not self.ocr_lane.take_finished(item.path) and ocr_pending(item.path, data):
                # OCR would hold the writer for seconds a page: the slow lane reads it instead,
                # and the previous version (if any) stays searchable until then.
                self.ocr_lane.submit(item.path, [Path(r) for r in confinement.roots])
                tally.files_done += 1
                # Recorded as pending (``almanac status`` lists it) with no hash, so the next
                # ingest reads it again if this process stops before the lane is done. A
                # previous version keeps its chunks and chunk count.
                return _Deferred(
                    DocumentInfo(
                        key,
                        source,
                        rel,
                        "",
                        size,
                        mtime,
                        kind,
                        DocumentStatus.PENDING,
                        "",
                        previous.chunk_count if previous is not None else 0,
                        previous.indexed_at if previous is not None else 0.0,
                        self._fingerprint,
                    )
                )
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
        # a scan that was only waiting for OCR (no chunks yet) is new when it is written
        is_new = previous is None or (
            previous.status is DocumentStatus.PENDING and not previous.chunk_count
        )
        return _Parsed(info, chunks, is_new=is_new)

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
            if isinstance(item, _Deferred):
                write_q.put(item)  # a row only: nothing to embed
                continue
            assert isinstance(item, _Parsed)
            pending.append(item)
            pending_chunks += len(item.chunks)
            if pending_chunks >= self.embed_window:
                self._flush(pending, failed, write_q, tally, report, stopping)
                pending, failed, pending_chunks = [], [], 0
        if not stopping():
            self._flush(pending, failed, write_q, tally, report, stopping)

    def _flush(
        self,
        docs: list[_Parsed],
        failed: list[_Failed],
        write_q: queue.Queue[object],
        tally: _Tally,
        report: ProgressCallback,
        stopping: Callable[[], bool],
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
        order = list(todo)
        # In slices, looking at the stop flag between them: a window of 256 chunks takes seconds
        # on a busy laptop, and closing the app must not wait for it. A window cut short is not
        # written; the next run embeds it again.
        for at in range(0, len(order), _EMBED_SLICE):
            if stopping():
                return
            part = order[at : at + _EMBED_SLICE]
            vectors.update(zip(part, self.embedder.embed([todo[h] for h in part]), strict=True))
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
            if isinstance(item, _Deferred):
                try:
                    self.store.mark_pending([item.info])
                except BaseException as exc:
                    errors.append(exc)
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
