"""The embedding model run by onnxruntime, int8-quantized by default (see
core/embedding/onnx_export.py).

The same pipeline as sentence-transformers around the exported graph: the model's own fast
tokenizer (truncation at max_seq_length, [CLS]/[SEP] from its template), mean pooling over the real
tokens, L2 normalization.

Parallelism is across texts, not inside one: each core runs its own single-threaded inference on
one text at a time. On 2 cores that does ~1.7x the work per CPU-second of one run spread over 2
threads (which synchronize at every operator and spin while waiting), a batch of one has no padding
at all, and with dynamic quantization a text's vector then never depends on which other texts
shared its batch (batched, the cosine between two runs of the same text drops to ~0.990).

Each concurrent run gets its own InferenceSession: two threads calling ``run`` on ONE session
contend inside onnxruntime (2 cores, 800 passages of ~140 tokens: 107 texts/s on one shared
session, 140 on two, 72 single-threaded). A session costs ~35 MB, so they are made on demand: a
process that only searches holds one.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from almanac.core.embedding.embedding import (
    BUNDLED_MODEL_NAME,
    EmbeddingError,
    TokenMeasure,
    Vectors,
    bundled_model_path,
)
from almanac.core.embedding.onnx_export import ExportedModel, ensure_exported
from almanac.core.embedding.pooling import mean_pool_normalized
from almanac.core.system.hardware import physical_cores
from almanac.core.system.offline import enforce_offline_env

DEFAULT_BATCH_SIZE = 1  # see the module docstring


class _SessionPool:
    """At most ``n`` sessions, each used by one run at a time, handed out first come, first
    served: a search query that arrives during an ingest waits for one inference to finish, not
    for the ingest's workers to stop grabbing sessions back (a plain Semaphore lets the releasing
    thread win again). Sessions are made by ``factory`` when all are busy and fewer than ``n``
    exist; the first one at once, so a model that can't load fails in the constructor."""

    def __init__(self, n: int, factory: Callable[[], Any]) -> None:
        self._n = max(1, n)
        self._factory = factory
        self._idle: list[Any] = [factory()]
        self._created = 1
        self._waiting: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()

    @property
    def created(self) -> int:
        return self._created

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            while self._waiting[0] is not ticket or (not self._idle and self._created >= self._n):
                self._cond.wait()
            self._waiting.popleft()
            found = self._idle.pop() if self._idle else None
            if found is None:
                self._created += 1
            self._cond.notify_all()  # the next in line may also be served
        if found is None:
            try:
                found = self._factory()  # outside the lock: loading takes ~0.1 s
            except BaseException:
                with self._cond:
                    self._created -= 1
                    self._cond.notify_all()
                raise
        try:
            yield found
        finally:
            with self._cond:
                self._idle.append(found)
                self._cond.notify_all()


class OnnxEmbedder:
    """Implements ``core.embedding.Embedder`` with onnxruntime. Thread-safe.

    ``threads``: how many texts are embedded at once, one core each (default: physical cores).
    ``batch_size``: texts per inference run; 1 unless measuring (see the module docstring)."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        variant: str = "int8",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        cache_dir: Path | None = None,
        name: str | None = None,
    ) -> None:
        enforce_offline_env()
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(model_path) if model_path else bundled_model_path()
        if not path.is_dir():
            raise EmbeddingError(f"embedding model folder not found: {path}")
        self._exported: ExportedModel = ensure_exported(path, variant, cache_dir)
        spec = self._exported.spec
        self._dim = spec.dim
        self._max_tokens = spec.max_seq_length
        self._variant = variant
        self._name = name or (BUNDLED_MODEL_NAME if model_path is None else str(path))
        self._batch_size = max(1, batch_size)
        self._workers = max(1, threads or physical_cores())

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one core per run; runs go in parallel instead
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings would land in the CLI's output
        model_file = str(self._exported.model_file)

        def new_session() -> Any:
            return ort.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])

        try:
            # No more sessions than cores: more runs at once would only fight over them.
            self._sessions = _SessionPool(self._workers, new_session)
            tokenizer_json = self._exported.tokenizer_file.read_text(encoding="utf-8")
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load the ONNX embedding model {self._exported.model_file}: {exc}"
            ) from exc
        # The shipped tokenizer.json truncates and pads to 128; sentence-transformers overrides
        # that with max_seq_length, and padding is done per batch below.
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(self._max_tokens)
        self._tokenizer.no_padding()
        self._measure = TokenMeasure(tokenizer_json)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def name(self) -> str:
        return self._name

    @property
    def variant(self) -> str:
        return self._variant

    @property
    def model_file(self) -> Path:
        return self._exported.model_file

    def count_tokens(self, text: str) -> int:
        return self._measure.count(text)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self._measure.offsets(text)

    def embed(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        # Longest first: the workers finish together, and batches (if > 1) pad little.
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        batches = [
            order[start : start + self._batch_size]
            for start in range(0, len(order), self._batch_size)
        ]

        def run(batch: list[int]) -> None:
            width = lengths[batch[0]]
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            # A session per run, not per call: a search query waits for one run, not a window.
            with self._sessions.session() as session:
                (states,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[batch] = mean_pool_normalized(states, mask)

        workers = min(self._workers, len(batches))
        if workers == 1:
            for batch in batches:
                run(batch)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="almanac-embed") as pool:
                for _ in pool.map(run, batches):  # consumed, so a failed run raises here
                    pass
        return out

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self.embed([text])[0]
        return vector
