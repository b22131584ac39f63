"""The knowledge base on disk: documents and chunks in LanceDB, the ANN index, full-text terms."""

from almanac.core.store.store import DocumentWrite, Store, StoredChunk, StoreError, read_meta

__all__ = ["DocumentWrite", "Store", "StoreError", "StoredChunk", "read_meta"]
