"""Composition root: builds the services once and hands them to the CLI or the desktop UI."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from almanac import _resources
from almanac.app.environment import Environment, model_cache_dir, read_environment
from almanac.core.system.offline import enforce_offline_env

if TYPE_CHECKING:
    # Imported where they are used: the desktop window imports this module before it is on
    # screen, and numpy, LanceDB and onnxruntime load on the thread that builds the services.
    from almanac.core.embedding.embedding import Embedder
    from almanac.core.indexing.chunking import ChunkingConfig
    from almanac.core.indexing.ingest import Ingestor
    from almanac.core.llm.base import Engine
    from almanac.core.retrieval.retrieval import RetrievalConfig, Searcher
    from almanac.core.store.store import Store

APP_NAME = "Almanac"


def default_kb_dir(env: Environment | None = None) -> Path:
    """$ALMANAC_KB, else the user data folder's kb/."""
    env = env or read_environment()
    if env.kb_dir is not None:
        return env.kb_dir
    import platformdirs

    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "kb"


def default_embedding_model(env: Environment | None = None) -> Path | None:
    """$ALMANAC_EMBEDDING_MODEL (a local sentence-transformers folder); None: the bundled one."""
    return (env or read_environment()).embedding_model


def default_documents_folder(env: Environment | None = None) -> Path:
    """Where dropped documents go by default: $ALMANAC_DOCUMENTS_DIR, else ~/Documents/Almanac."""
    env = env or read_environment()
    if env.documents_dir is not None:
        return env.documents_dir
    import platformdirs

    return platformdirs.user_documents_path() / APP_NAME


def default_model(env: Environment | None = None) -> Path | None:
    """$ALMANAC_MODEL (a GGUF file), else None."""
    return (env or read_environment()).model


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The chat model to load, and why: ``path`` None means sources-only mode."""

    path: Path | None
    lora: Path | None
    name: str  # what the user sees: a file name, or the default model's name
    origin: str  # "explicit" (--model, Settings), "environment" ($ALMANAC_MODEL), "default"
    problem: str | None = None  # why the default model can't be used (then path is None)
    # Hashes the files and returns the GGUF to load (the default model's faster runtime file, or
    # ``path``); seconds of work, so it runs on the loading worker.
    prepare: Callable[[], Path] | None = None
    chat_format: str | None = None  # the manifest's, for a base GGUF without a chat template


def choose_model(
    explicit: Path | None = None, lora: Path | None = None, env: Environment | None = None
) -> ModelChoice:
    """One rule for the CLI and the app: the model the user named (``--model``, Settings), else
    $ALMANAC_MODEL, else Almanac's own default model (base + adapter), else sources-only with the
    reason. ``lora`` goes with a model the user named."""
    if explicit is not None:
        return ModelChoice(Path(explicit).expanduser(), lora, Path(explicit).name, "explicit")
    env = env or read_environment()
    if env.model is not None:
        return ModelChoice(env.model, lora, env.model.name, "environment")
    if env.no_default_model:
        return ModelChoice(None, None, "", "default")
    from almanac.core.llm.default_model import DefaultModelError, resolve_default_model

    try:
        found = resolve_default_model(env.default_model_dir, cache_dir=model_cache_dir(env))
    except DefaultModelError as exc:
        return ModelChoice(None, None, "", "default", problem=str(exc))

    def prepare() -> Path:
        return found.prepare(model_cache_dir(env)).path

    return ModelChoice(
        found.path,
        found.adapter,
        found.name,
        "default",
        prepare=prepare,
        chat_format=found.chat_format,
    )


def prepare_default_model(env: Environment | None = None) -> None:
    """Verify the default model and make its files ready (a base in parts joined, a runtime file
    derived) now rather than on the app's first start; a problem is printed, not raised, since
    the app then answers with passages and says why."""
    from almanac.core.llm.default_model import DefaultModelError

    choice = choose_model(env=env)
    problem = choice.problem
    if problem is None and choice.prepare is not None:
        try:
            print(f"default model ready: {choice.name} ({choice.prepare()})")
        except DefaultModelError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"warning: the default model cannot be used: {problem}", file=sys.stderr)


def build_engine(
    model: Path | None = None,
    *,
    server_url: str | None = None,
    server_model: str | None = None,
    n_ctx: int = 4096,
    gpu_layers: int | str = "auto",
    threads: int | None = None,
    lora: Path | None = None,
    chat_format: str | None = None,
) -> Engine | None:
    """The chat engine the settings ask for, or None (sources-only mode). ``lora``: a LoRA
    adapter GGUF applied to the local ``model`` at load time; ``chat_format``: the built-in
    template for a GGUF that carries none (a default model's manifest names it)."""
    if server_url:
        from almanac.core.llm.openai_engine import OpenAICompatibleEngine

        return OpenAICompatibleEngine(server_url, model=server_model, n_ctx=n_ctx)
    if model is None:
        return None
    from almanac.core.llm.llama_engine import LlamaCppEngine

    return LlamaCppEngine(
        model,
        n_ctx=n_ctx,
        gpu_layers=gpu_layers,
        threads=threads,
        lora_path=lora,
        chat_format=chat_format,
    )


def sample_kb_folder() -> Path:
    """The bundled sample documents (resources/sample-kb in a source checkout)."""
    return _resources.sample_kb_dir()


@dataclass(frozen=True, slots=True)
class Services:
    store: Store
    embedder: Embedder
    ingestor: Ingestor
    searcher: Searcher


def build_embedder(
    embedding_model: Path | None = None,
    backend: str | None = None,
    *,
    cache_dir: Path | None = None,
) -> Embedder:
    """int8 (default): the model exported to ONNX and quantized, made once from the local weights
    and cached in ``cache_dir`` (default: :func:`~almanac.app.environment.model_cache_dir`);
    fp32: the model itself through sentence-transformers. Their vectors are interchangeable, so
    both carry the model's name and either opens any KB: cosine >= 0.988 (mean 0.995) chunk by
    chunk on SciFact, and an fp32 KB searched with int8 queries scores the same nDCG@10
    (benchmarks/retrieval_quality.py --embedder/--query-embedder)."""
    from almanac.core.embedding.embedding import (
        DEFAULT_EMBEDDER_BACKEND,
        EMBEDDER_BACKENDS,
        SentenceTransformerEmbedder,
    )

    chosen = backend or DEFAULT_EMBEDDER_BACKEND
    if chosen == "fp32":
        return SentenceTransformerEmbedder(embedding_model)
    if chosen == "int8":
        from almanac.core.embedding.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(embedding_model, cache_dir=cache_dir or model_cache_dir())
    raise ValueError(
        f"unknown embedder backend {chosen!r}; expected one of {', '.join(EMBEDDER_BACKENDS)}"
    )


def build_services(
    kb_dir: Path,
    *,
    embedding_model: Path | None = None,
    embedder_backend: str | None = None,
    chunking: ChunkingConfig | None = None,
    retrieval: RetrievalConfig | None = None,
) -> Services:
    """The store, embedder, ingestor and searcher of the knowledge base in ``kb_dir``.
    ``embedder_backend`` None: the one chosen in the user's Settings."""
    from almanac.core.indexing.chunking import Chunker, ChunkingConfig
    from almanac.core.indexing.ingest import Ingestor
    from almanac.core.retrieval.retrieval import Searcher
    from almanac.core.store.store import Store

    enforce_offline_env()
    if embedder_backend is None:
        from almanac.app.settings import SettingsStore, default_settings_path

        embedder_backend = SettingsStore(default_settings_path()).load().embedder_backend
    embedder = build_embedder(embedding_model, embedder_backend)
    store = Store(kb_dir, dim=embedder.dim, embedder_name=embedder.name)
    chunker = Chunker(
        embedder.count_tokens,
        chunking or ChunkingConfig(max_tokens=embedder.max_tokens),
        token_offsets=embedder.token_offsets,
    )
    return Services(
        store=store,
        embedder=embedder,
        ingestor=Ingestor(store, embedder, chunker),
        searcher=Searcher(store, embedder, retrieval),
    )
