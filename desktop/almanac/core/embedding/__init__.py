"""Text embeddings: the Embedder protocol, the sentence-transformers (fp32) and onnxruntime (int8)
backends, and the one-time int8 export of the bundled model into a local cache."""

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
