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

KB_ENV = "ALMANAC_KB"  # the knowledge base folder
DOCUMENTS_DIR_ENV = "ALMANAC_DOCUMENTS_DIR"  # where drops are copied by default
EMBEDDING_MODEL_ENV = "ALMANAC_EMBEDDING_MODEL"  # a local sentence-transformers folder
MODEL_ENV = "ALMANAC_MODEL"  # a GGUF file: the chat model unless the user named one
# Set (1) where answers must come from passages only: the test suite, a sources-only deployment.
NO_DEFAULT_MODEL_ENV = "ALMANAC_NO_DEFAULT_MODEL"
CONFIG_DIR_ENV = "ALMANAC_CONFIG_DIR"  # settings.json
DATA_DIR_ENV = "ALMANAC_DATA_DIR"  # history.sqlite3, the embedder's export cache
DEFAULT_MODEL_DIR_ENV = "ALMANAC_DEFAULT_MODEL_DIR"  # the default model: a folder with a manifest
MODELS_DIR_ENV = "ALMANAC_MODELS_DIR"  # where local GGUF files live
USER_CATALOG_ENV = "ALMANAC_USER_CATALOG"  # user-models.json: models the user's tools registered
MODEL_CACHE_DIR_ENV = "ALMANAC_MODEL_CACHE_DIR"  # derived model files (ONNX export, runtime GGUF)

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
    models_dir: Path | None = None
    user_catalog: Path | None = None
    model_cache_dir: Path | None = None


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
        models_dir=path(MODELS_DIR_ENV),
        user_catalog=path(USER_CATALOG_ENV),
        model_cache_dir=path(MODEL_CACHE_DIR_ENV),
    )


# The core's locations take these as parameters and default to the package's or the user data
# folder; the overrides are applied here.


def models_dir(env: Environment | None = None) -> Path:
    """Where local GGUF files live: $ALMANAC_MODELS_DIR, else <repo>/models."""
    env = env or read_environment()
    if env.models_dir is not None:
        return env.models_dir
    from almanac.core.llm.catalog import default_models_dir

    return default_models_dir()


def user_catalog_path(env: Environment | None = None) -> Path:
    """$ALMANAC_USER_CATALOG, else user-models.json in the user data folder."""
    env = env or read_environment()
    if env.user_catalog is not None:
        return env.user_catalog
    from almanac.core.llm.catalog import default_user_catalog_path

    return default_user_catalog_path()


def model_cache_dir(env: Environment | None = None) -> Path:
    """Derived model files (the embedder's ONNX export, the default model's runtime file):
    $ALMANAC_MODEL_CACHE_DIR, else <data dir>/model-cache (data dir: $ALMANAC_DATA_DIR or the
    user data folder)."""
    env = env or read_environment()
    if env.model_cache_dir is not None:
        return env.model_cache_dir
    from almanac.core.embedding.onnx_export import default_cache_root

    return default_cache_root(env.data_dir)
