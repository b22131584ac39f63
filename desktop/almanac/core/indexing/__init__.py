"""Keeping the store in step with the library folders: chunking, ingestion, live folder sync, and
the one writer (every change to the index is a job on ``IndexWriter``'s queue; other processes
are kept out by the writer lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from almanac.core.system.lazy import lazy_names

if TYPE_CHECKING:
    from almanac.core.indexing.chunking import (
        Chunker,
        ChunkingConfig,
    )
    from almanac.core.indexing.ingest import (
        IngestCancelled,
        Ingestor,
    )
    from almanac.core.indexing.sync import (
        BatchResult,
        FolderSync,
        SyncState,
    )
    from almanac.core.indexing.writer import (
        IndexWriter,
        WriteJob,
    )
    from almanac.core.indexing.writer_lock import (
        WriteCancelled,
        WriterBusyError,
    )

__all__ = [
    "BatchResult",
    "Chunker",
    "ChunkingConfig",
    "FolderSync",
    "IndexWriter",
    "IngestCancelled",
    "Ingestor",
    "SyncState",
    "WriteCancelled",
    "WriteJob",
    "WriterBusyError",
]

# Imported on first use (PEP 562): importing one light submodule (a record, a constant) must
# not load numpy, LanceDB or onnxruntime with the rest of the package (the desktop window
# is on screen before they load).
_SUBMODULE = {
    "Chunker": "almanac.core.indexing.chunking",
    "ChunkingConfig": "almanac.core.indexing.chunking",
    "IngestCancelled": "almanac.core.indexing.ingest",
    "Ingestor": "almanac.core.indexing.ingest",
    "BatchResult": "almanac.core.indexing.sync",
    "FolderSync": "almanac.core.indexing.sync",
    "SyncState": "almanac.core.indexing.sync",
    "IndexWriter": "almanac.core.indexing.writer",
    "WriteJob": "almanac.core.indexing.writer",
    "WriteCancelled": "almanac.core.indexing.writer_lock",
    "WriterBusyError": "almanac.core.indexing.writer_lock",
}


__getattr__ = lazy_names(__name__, _SUBMODULE)
