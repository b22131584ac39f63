"""Every environment variable the application reads, read in one place.

The variables are overrides for tests, packaged builds and power users; the README documents them.
Both front ends see the same values because both read them through :func:`read_environment`
(``almanac.app.bootstrap`` reads them once at start-up).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from almanac.core.llm.default_model import DEFAULT_MODEL_DIR_ENV  # a folder with a manifest

KB_ENV = "ALMANAC_KB"  # the knowledge base folder
DOCUMENTS_DIR_ENV = "ALMANAC_DOCUMENTS_DIR"  # where drops are copied by default
EMBEDDING_MODEL_ENV = "ALMANAC_EMBEDDING_MODEL"  # a local sentence-transformers folder
MODEL_ENV = "ALMANAC_MODEL"  # a GGUF file: the chat model unless the user named one
# Set (1) where answers must come from passages only: the test suite, a sources-only deployment.
NO_DEFAULT_MODEL_ENV = "ALMANAC_NO_DEFAULT_MODEL"
CONFIG_DIR_ENV = "ALMANAC_CONFIG_DIR"  # settings.json
DATA_DIR_ENV = "ALMANAC_DATA_DIR"  # history.sqlite3, the embedder's export cache

_TRUE = ("1", "true", "yes")


@dataclass(frozen=True, slots=True)
class Environment:
    """The overrides that are set; None (False) where a variable is unset or empty."""

    kb_dir: Path | None = None
    documents_dir: Path | None = None
    embedding_model: Path | None = None
    model: Path | None = None
    no_default_model: bool = False
    default_model_dir: Path | None = None
    config_dir: Path | None = None
    data_dir: Path | None = None


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    env = os.environ if environ is None else environ

    def path(name: str) -> Path | None:
        value = env.get(name, "").strip()
        return Path(value).expanduser() if value else None

    return Environment(
        kb_dir=path(KB_ENV),
        documents_dir=path(DOCUMENTS_DIR_ENV),
        embedding_model=path(EMBEDDING_MODEL_ENV),
        model=path(MODEL_ENV),
        no_default_model=env.get(NO_DEFAULT_MODEL_ENV, "").strip().lower() in _TRUE,
        default_model_dir=path(DEFAULT_MODEL_DIR_ENV),
        config_dir=path(CONFIG_DIR_ENV),
        data_dir=path(DATA_DIR_ENV),
    )
