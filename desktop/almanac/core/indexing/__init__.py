"""Keeping the store in step with the library folders: chunking, ingestion, live folder sync, and
the cross-process writer lock."""

from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import IngestCancelled, Ingestor
from almanac.core.indexing.sync import BatchResult, FolderSync, SyncState
from almanac.core.indexing.writer_lock import WriterBusyError

__all__ = [
    "BatchResult",
    "Chunker",
    "ChunkingConfig",
    "FolderSync",
    "IngestCancelled",
    "Ingestor",
    "SyncState",
    "WriterBusyError",
]
