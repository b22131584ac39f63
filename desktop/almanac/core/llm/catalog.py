"""The catalog of recommended GGUF models and adding a local model file against it.

Almanac never downloads a model: people fetch a file from the catalog's ``download_page`` (or bring
their own) and add it. Adding inspects the file (:func:`inspect_gguf`), hashes it, and when the
catalog knows that file name and its SHA-256, refuses a file whose hash differs: a partial
download, a corrupted copy, or a different upload under the same name must not pass for the
recommended model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from almanac import _resources
from almanac.core.llm.base import ModelError
from almanac.core.llm.gguf_file import GgufInfo, inspect_gguf
from almanac.core.system.hashing import sha256_file

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "file_name": (str,),
    "download_page": (str,),
    "size_bytes": (int, type(None)),
    "quantization": (str,),
    "sha256": (str, type(None)),
    "sha256_source": (str, type(None)),
    "context_length": (int,),
    "licence": (str,),
    "parameters": (str,),
}
_OPTIONAL = {"sha256_source"}


class CatalogError(ValueError):
    """The catalog file is missing or malformed. The message names the file and the field."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    file_name: str
    download_page: str  # informational only; the app never fetches it
    size_bytes: int | None  # None: no verified size
    quantization: str
    sha256: str | None  # lowercase hex; None: no verified hash, files are accepted unverified
    context_length: int
    licence: str
    parameters: str  # as the model card states it, e.g. "1.24B"
    sha256_source: str | None = None  # where the hash was read, for audits


@dataclass(frozen=True, slots=True)
class AddedModel:
    path: Path
    info: GgufInfo
    sha256: str
    entry: CatalogEntry | None  # the catalog entry with this file name, if any
    verified: bool  # True only when the catalog had a hash for this file and it matched


def default_catalog_path() -> Path:
    return _resources.catalog_path()


def default_models_dir() -> Path:
    """Where local GGUF files live by default: <repo>/models (git-ignores *.gguf). The
    application layer uses $ALMANAC_MODELS_DIR instead when it is set (almanac.app.environment)."""
    return _resources.models_dir()


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    path = Path(path) if path is not None else default_catalog_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CatalogError(f"model catalog not found: {path}") from e
    except OSError as e:
        raise CatalogError(f"cannot read model catalog {path}: {e.strerror or e}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CatalogError(f"{path}: not valid JSON ({e})") from e
    return parse_catalog(raw, source=str(path))


def parse_catalog(raw: Any, source: str = "catalog") -> list[CatalogEntry]:
    """Validate decoded catalog JSON. Every problem names its field, e.g. ``models[2].sha256``."""
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise CatalogError(f'{source}: expected an object with a "models" list')
    if raw.get("version") != 1:
        raise CatalogError(f"{source}: unsupported catalog version {raw.get('version')!r}")
    entries: list[CatalogEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw["models"]):
        entry = _parse_entry(item, f"{source}: models[{i}]")
        # File names identify entries; case-insensitive file systems must not see two.
        key = entry.file_name.lower()
        if key in seen:
            raise CatalogError(
                f"{source}: models[{i}].file_name {entry.file_name!r} repeats models[{seen[key]}]"
            )
        seen[key] = i
        entries.append(entry)
    return entries


def _parse_entry(item: Any, where: str) -> CatalogEntry:
    if not isinstance(item, dict):
        raise CatalogError(f"{where}: expected an object")
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise CatalogError(f"{where}: unknown field {unknown[0]!r}")
    for key, types in _FIELDS.items():
        if key not in item:
            if key in _OPTIONAL:
                continue
            raise CatalogError(f"{where}: missing field {key!r}")
        value = item[key]
        # bool is an int subclass; true/false is never a valid size.
        if isinstance(value, bool) or not isinstance(value, types):
            raise CatalogError(f"{where}.{key}: wrong type {type(value).__name__}")
        if isinstance(value, str) and not value.strip():
            raise CatalogError(f"{where}.{key}: empty")
    file_name: str = item["file_name"]
    if not file_name.endswith(".gguf") or "/" in file_name or "\\" in file_name:
        raise CatalogError(f"{where}.file_name: must be a bare *.gguf file name")
    sha = item["sha256"]
    if sha is not None and not _SHA256.match(sha):
        raise CatalogError(f"{where}.sha256: must be 64 lowercase hex digits or null")
    size = item["size_bytes"]
    if size is not None and size <= 0:
        raise CatalogError(f"{where}.size_bytes: must be positive or null")
    if item["context_length"] <= 0:
        raise CatalogError(f"{where}.context_length: must be positive")
    page = urlsplit(item["download_page"])
    if page.scheme != "https" or not page.netloc:
        raise CatalogError(f"{where}.download_page: must be an https:// URL")
    return CatalogEntry(**item)


def find_entry(file_name: str, catalog: Sequence[CatalogEntry]) -> CatalogEntry | None:
    """The entry for ``file_name``: exact match first, then case-insensitive (Windows, macOS)."""
    name = Path(file_name).name
    for entry in catalog:
        if entry.file_name == name:
            return entry
    lowered = name.lower()
    for entry in catalog:
        if entry.file_name.lower() == lowered:
            return entry
    return None


def add_model(
    path: Path,
    catalog: Sequence[CatalogEntry] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AddedModel:
    """Inspect and hash a local model; check it against the catalog when the catalog knows it.

    Raises the specific :class:`ModelError` from :func:`inspect_gguf` for unusable files, and
    ``ModelError("sha256 mismatch: ...")`` when the catalog's hash for this file name differs.
    ``catalog`` defaults to :func:`load_catalog`.
    """
    path = Path(path)
    info = inspect_gguf(path)  # cheap, and the specific errors come before a long hash
    entries = load_catalog() if catalog is None else catalog
    entry = find_entry(path.name, entries)
    if entry is not None and entry.size_bytes is not None and entry.size_bytes != info.size_bytes:
        # A different size already proves a different file; say so without hashing gigabytes.
        raise ModelError(
            f"size mismatch for {path.name}: the catalog expects {entry.size_bytes} bytes, "
            f"the file has {info.size_bytes} (an incomplete download or a different upload; "
            f"the catalog's file is at {entry.download_page})"
        )
    try:
        digest = sha256_file(path, progress)
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {e.strerror or e}") from e
    verified = False
    if entry is not None and entry.sha256 is not None:
        if digest != entry.sha256:
            raise ModelError(
                f"sha256 mismatch for {path.name}: expected {entry.sha256}, got {digest} "
                f"(a damaged download or a different upload; the catalog's file is at "
                f"{entry.download_page})"
            )
        verified = True
    return AddedModel(path=path, info=info, sha256=digest, entry=entry, verified=verified)


# -- models the user made or added (e.g. by ``almanac finetune``) -------------------------------


@dataclass(frozen=True, slots=True)
class UserModel:
    """A local model registered by the user's own tools; it has no download page."""

    name: str
    path: str  # absolute path of the GGUF file
    sha256: str
    size_bytes: int
    quantization: str
    context_length: int | None
    base_model: str  # what it was made from, e.g. the fine-tuned base model's folder
    model_card: str | None = None  # path of its Markdown model card
    created: str = ""  # ISO 8601


def default_user_catalog_path() -> Path:
    """user-models.json in the user data folder. The application layer passes
    $ALMANAC_USER_CATALOG instead when it is set (almanac.app.environment)."""
    import platformdirs

    return platformdirs.user_data_path("Almanac", appauthor=False) / "user-models.json"


def load_user_models(path: Path | None = None) -> list[UserModel]:
    """The registered models; an absent file is an empty list."""
    path = Path(path) if path is not None else default_user_catalog_path()
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CatalogError(f"{path}: not a readable JSON file ({e})") from e
    if (
        not isinstance(raw, dict)
        or raw.get("version") != 1
        or not isinstance(raw.get("models"), list)
    ):
        raise CatalogError(f'{path}: expected {{"version": 1, "models": [...]}}')
    known = {f.name for f in fields(UserModel)}
    models: list[UserModel] = []
    for i, item in enumerate(raw["models"]):
        if not isinstance(item, dict) or set(item) - known:
            raise CatalogError(f"{path}: models[{i}]: expected an object with {sorted(known)}")
        try:
            model = UserModel(**item)
        except TypeError as e:
            raise CatalogError(f"{path}: models[{i}]: {e}") from e
        if not _SHA256.match(str(model.sha256)):
            raise CatalogError(f"{path}: models[{i}].sha256: must be 64 lowercase hex digits")
        models.append(model)
    return models


def register_user_model(model: UserModel, path: Path | None = None) -> Path:
    """Add ``model`` (replacing an entry for the same file) and rewrite the file atomically."""
    path = Path(path) if path is not None else default_user_catalog_path()
    models = [m for m in load_user_models(path) if m.path != model.path] + [model]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    payload = {"version": 1, "models": [asdict(m) for m in models]}
    partial.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path
