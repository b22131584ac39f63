"""Text embeddings: the Embedder protocol, the sentence-transformers (fp32) and onnxruntime (int8)
backends, and the one-time int8 export of the bundled model into a local cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from almanac.core.system.lazy import lazy_names

if TYPE_CHECKING:
    from almanac.core.embedding.embedding import (
        DEFAULT_EMBEDDER_BACKEND,
        EMBEDDER_BACKENDS,
        Embedder,
        EmbeddingError,
        SentenceTransformerEmbedder,
        bundled_model_path,
        embedding_text,
    )
    from almanac.core.embedding.onnx_embedder import OnnxEmbedder

__all__ = [
    "DEFAULT_EMBEDDER_BACKEND",
    "EMBEDDER_BACKENDS",
    "Embedder",
    "EmbeddingError",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "embedding_text",
]

# Imported on first use (PEP 562): importing one light submodule (a record, a constant) must
# not load numpy, LanceDB or onnxruntime with the rest of the package (the desktop window
# is on screen before they load).
_SUBMODULE = {
    "DEFAULT_EMBEDDER_BACKEND": "almanac.core.embedding.embedding",
    "EMBEDDER_BACKENDS": "almanac.core.embedding.embedding",
    "Embedder": "almanac.core.embedding.embedding",
    "EmbeddingError": "almanac.core.embedding.embedding",
    "SentenceTransformerEmbedder": "almanac.core.embedding.embedding",
    "bundled_model_path": "almanac.core.embedding.embedding",
    "embedding_text": "almanac.core.embedding.embedding",
    "OnnxEmbedder": "almanac.core.embedding.onnx_embedder",
}


__getattr__ = lazy_names(__name__, _SUBMODULE)
