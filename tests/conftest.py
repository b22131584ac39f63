"""Shared fixtures: one real embedder per session, real LanceDB knowledge bases in temp folders."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests choose their model; the real default model (~100 MB, slow on 2 cores) only where a test
# asks for it (tests/integration/test_default_model.py).
os.environ.setdefault("ALMANAC_NO_DEFAULT_MODEL", "1")

from almanac.app.services import build_embedder, sample_kb_folder
from almanac.core.embedding.embedding import Embedder, SentenceTransformerEmbedder
from almanac.core.indexing.chunking import Chunker, ChunkingConfig
from almanac.core.indexing.ingest import Ingestor
from almanac.core.retrieval.retrieval import RetrievalConfig, Searcher
from almanac.core.store.store import Store
from inotify_queue import repair_leftover

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _inotify_queue_as_the_machine_had_it() -> None:
    # Every watcher in the suite needs the kernel's normal event queue (see inotify_queue).
    repaired = repair_leftover()
    if repaired:
        warnings.warn(repaired, stacklevel=1)


@pytest.fixture(scope="session", autouse=True)
def _own_settings_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The command line reads the user's Settings too (system prompt, answer options, embedder):
    # a developer's own settings must not change what the tests see. Tests that need settings
    # point ALMANAC_CONFIG_DIR elsewhere themselves (monkeypatch restores this one).
    os.environ.setdefault("ALMANAC_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The embedder the app ships and builds by default (the int8 ONNX export): the suites test
    what users run. ``fp32_embedder`` is the sentence-transformers model it is checked against."""
    return build_embedder()


@pytest.fixture(scope="session")
def fp32_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@dataclass
class KB:
    path: Path
    store: Store
    ingestor: Ingestor
    searcher: Searcher


@pytest.fixture
def make_kb(tmp_path: Path, embedder: Embedder):
    def factory(
        name: str = "kb",
        chunking: ChunkingConfig | None = None,
        retrieval: RetrievalConfig | None = None,
    ) -> KB:
        kb_dir = tmp_path / name
        store = Store(kb_dir, dim=embedder.dim, embedder_name=embedder.name)
        chunker = Chunker(embedder.count_tokens, chunking or ChunkingConfig())
        return KB(
            kb_dir, store, Ingestor(store, embedder, chunker), Searcher(store, embedder, retrieval)
        )

    return factory


@pytest.fixture
def kb(make_kb) -> KB:
    return make_kb()


@pytest.fixture(scope="session")
def sample_kb() -> Path:
    return sample_kb_folder()


@pytest.fixture(scope="session")
def sample_questions() -> list[dict[str, object]]:
    return json.loads((DATA / "sample_kb_questions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def unanswerable_questions() -> list[dict[str, object]]:
    return json.loads((DATA / "sample_kb_unanswerable.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_gguf() -> Path:
    """A tiny chat GGUF built offline, cached in build/test-models: real llama.cpp, tiny weights."""
    from llm_fixtures import tiny_model_path

    return tiny_model_path()
