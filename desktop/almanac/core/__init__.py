"""Qt-free core: documents, chunking, embedding, store, ingestion, retrieval."""
