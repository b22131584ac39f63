"""Keeping the store in step with the library folders: chunking, ingestion, live folder sync, and
the one writer (every change to the index is a job on ``IndexWriter``'s queue; other processes
are kept out by the writer lock)."""

from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import IngestCancelled, Ingestor
from almanac.core.indexing.sync import BatchResult, FolderSync, SyncState
from almanac.core.indexing.writer import IndexWriter, WriteJob
from almanac.core.indexing.writer_lock import WriteCancelled, WriterBusyError

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
