"""User settings: one typed, versioned record stored as a JSON file.

JSON rather than pickle or QSettings: a person can read and fix it, and loading it can never run
code. Loading is forgiving (a bad field falls back to its default and says so in ``warnings``)
because a settings file that stops the app from starting is worse than one reset field; saving is
strict (invalid settings are refused) so that the file only ever holds values this version accepts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_config_path

from almanac.app.environment import read_environment
from almanac.core.answering.answer import AnswerConfig
from almanac.core.answering.prompting import default_system_prompt
from almanac.core.embedding.embedding import DEFAULT_EMBEDDER_BACKEND, EMBEDDER_BACKENDS

SETTINGS_VERSION = 1
SETTINGS_FILE = "settings.json"

THEMES = ("system", "light", "dark")
GPU_LAYER_WORDS = ("auto", "all", "none")

MIN_CONTEXT, MAX_CONTEXT = 512, 131072
MAX_THREADS = 1024
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.0, 2.0
MIN_SOURCES, MAX_SOURCES = 1, 50
MIN_MAX_TOKENS, MAX_MAX_TOKENS = 16, 32768


# The answer defaults are the answer service's own: one set for the window and the command line.
_ANSWER = AnswerConfig()


@dataclass(frozen=True, slots=True)
class Settings:
    version: int = SETTINGS_VERSION
    model_path: str | None = None
    gpu_layers: str = "auto"  # "auto" | "all" | "none" | a number as text
    threads: int | None = None  # None: physical cores
    context_size: int = 4096
    temperature: float = _ANSWER.temperature
    sources: int = _ANSWER.sources
    relevance_floor: float = 0.25
    documents_folders: tuple[str, ...] = ()
    copy_dropped_files: bool = True  # drops are copied into the first documents folder
    # Network drives (SMB, NFS) don't deliver inotify events: check the folders by polling instead.
    poll_folders: bool = False
    system_prompt: str | None = None  # None: resources/prompts/system.txt
    theme: str = "system"  # "system" | "light" | "dark"
    max_tokens: int = _ANSWER.max_tokens
    embedder_backend: str = DEFAULT_EMBEDDER_BACKEND  # "int8" (ONNX, quantized) | "fp32"


class SettingsError(Exception):
    """Settings that this version refuses to save; ``reasons`` has one line per problem."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("Invalid settings: " + "; ".join(self.reasons))


# --- validation -------------------------------------------------------------------------------
# One checker per field, each returning its reasons, so that load() can reset exactly the fields
# that are wrong and validate_settings() can list every problem at once.


def _check_version(v: Any) -> list[str]:
    if not _is_int(v) or v < 1:
        return ["Settings version must be a whole number of at least 1"]
    return []


def _check_model_path(v: Any) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, str) or not v.strip():
        return ["Model path must be a file path or unset"]
    path = Path(v).expanduser()
    reasons = []
    if path.suffix.lower() != ".gguf":
        reasons.append(f"Model file must be a .gguf file: {v}")
    if not path.is_file():
        reasons.append(f"Model file does not exist: {v}")
    return reasons


def _check_gpu_layers(v: Any) -> list[str]:
    # Same grammar as llama_engine.resolve_gpu_layers, so a saved value can never fail at load time.
    if isinstance(v, str):
        text = v.strip().lower()
        if text in GPU_LAYER_WORDS or (text.isascii() and text.isdigit()):
            return []
    return [f"GPU layers must be 'auto', 'all', 'none' or a whole number, not {v!r}"]


def _check_threads(v: Any) -> list[str]:
    if v is None or (_is_int(v) and 1 <= v <= MAX_THREADS):
        return []
    return [f"Threads must be between 1 and {MAX_THREADS}, or unset for the number of cores"]


def _check_context_size(v: Any) -> list[str]:
    if _is_int(v) and MIN_CONTEXT <= v <= MAX_CONTEXT:
        return []
    return [f"Context size must be between {MIN_CONTEXT} and {MAX_CONTEXT} tokens"]


def _check_temperature(v: Any) -> list[str]:
    if _is_number(v) and MIN_TEMPERATURE <= v <= MAX_TEMPERATURE:
        return []
    return [f"Temperature must be between {MIN_TEMPERATURE:g} and {MAX_TEMPERATURE:g}"]


def _check_sources(v: Any) -> list[str]:
    if _is_int(v) and MIN_SOURCES <= v <= MAX_SOURCES:
        return []
    return [f"Sources must be between {MIN_SOURCES} and {MAX_SOURCES}"]


def _check_relevance_floor(v: Any) -> list[str]:
    if _is_number(v) and 0.0 <= v <= 1.0:
        return []
    return ["Relevance floor must be between 0 and 1"]


def _check_documents_folders(v: Any) -> list[str]:
    if not isinstance(v, tuple | list) or not all(isinstance(f, str) for f in v):
        return ["Documents folders must be a list of folder paths"]
    return [
        f"Documents folder does not exist: {f}"
        for f in v
        if not f.strip() or not Path(f).expanduser().is_dir()
    ]


def _check_copy_dropped_files(v: Any) -> list[str]:
    return [] if isinstance(v, bool) else ["Copy dropped files must be true or false"]


def _check_poll_folders(v: Any) -> list[str]:
    return [] if isinstance(v, bool) else ["Poll folders must be true or false"]


def _check_system_prompt(v: Any) -> list[str]:
    # An empty prompt would silently drop the citing/refusing instructions; unset means "default".
    if v is None or (isinstance(v, str) and v.strip()):
        return []
    return ["System prompt must not be empty (unset it to use the default prompt)"]


def _check_theme(v: Any) -> list[str]:
    if v in THEMES:
        return []
    return [f"Theme must be one of {', '.join(THEMES)}, not {v!r}"]


def _check_max_tokens(v: Any) -> list[str]:
    if _is_int(v) and MIN_MAX_TOKENS <= v <= MAX_MAX_TOKENS:
        return []
    return [f"Answer length must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS} tokens"]


def _check_embedder_backend(v: Any) -> list[str]:
    if v in EMBEDDER_BACKENDS:
        return []
    return [f"Embedder backend must be one of {', '.join(EMBEDDER_BACKENDS)}, not {v!r}"]


_CHECKS: dict[str, Callable[[Any], list[str]]] = {
    "version": _check_version,
    "model_path": _check_model_path,
    "gpu_layers": _check_gpu_layers,
    "threads": _check_threads,
    "context_size": _check_context_size,
    "temperature": _check_temperature,
    "sources": _check_sources,
    "relevance_floor": _check_relevance_floor,
    "documents_folders": _check_documents_folders,
    "copy_dropped_files": _check_copy_dropped_files,
    "poll_folders": _check_poll_folders,
    "system_prompt": _check_system_prompt,
    "theme": _check_theme,
    "max_tokens": _check_max_tokens,
    "embedder_backend": _check_embedder_backend,
}


def _check_token_budget(s: Settings) -> list[str]:
    # The prompt and the answer share the context window: an answer as long as the window would
    # leave no room for the sources.
    # Only when both are valid on their own: one wrong number should give one reason.
    if _check_max_tokens(s.max_tokens) or _check_context_size(s.context_size):
        return []
    if s.max_tokens >= s.context_size:
        return ["Answer length must be smaller than the context size"]
    return []


def validate_settings(s: Settings) -> list[str]:
    """One human-readable reason per problem; [] when the settings are valid."""
    reasons: list[str] = []
    for name, check in _CHECKS.items():
        reasons.extend(check(getattr(s, name)))
    reasons.extend(_check_token_budget(s))
    return reasons


def _is_int(v: Any) -> bool:
    # bool is an int subclass; "threads": true is a mistake, not 1.
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, float) and v == v)  # v == v rejects NaN


# --- storage ----------------------------------------------------------------------------------


def default_settings_path() -> Path:
    override = read_environment().config_dir
    if override is not None:
        return override / SETTINGS_FILE
    return user_config_path("Almanac", appauthor=False) / SETTINGS_FILE


def _to_json(settings: Settings) -> dict[str, Any]:
    data = dataclasses.asdict(settings)
    data["documents_folders"] = list(settings.documents_folders)
    return data


def _coerce(name: str, value: Any) -> Any:
    """JSON's shapes to the dataclass's: lists become tuples, whole floats stay floats."""
    if name == "documents_folders" and isinstance(value, list):
        return tuple(value)
    if name in ("temperature", "relevance_floor") and _is_int(value):
        return float(value)
    return value


class SettingsStore:
    """Reads and writes one settings file. Not a global: the composition root owns one."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_settings_path()
        self.warnings: list[str] = []

    def load(self) -> Settings:
        """The stored settings; bad fields fall back to defaults and are listed in ``warnings``."""
        self.warnings = []
        defaults = Settings()
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return defaults
        except (OSError, UnicodeDecodeError) as exc:
            self.warnings.append(
                f"Could not read settings file {self.path} ({exc}); using defaults"
            )
            return defaults
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._keep_copy_of_bad_file(f"is not valid JSON ({exc})")
            return defaults
        if not isinstance(data, dict):
            self._keep_copy_of_bad_file(
                f"does not hold a JSON object (found {type(data).__name__})"
            )
            return defaults

        version = data.get("version", SETTINGS_VERSION)
        if _check_version(version):
            self.warnings.append(f"Settings version {version!r} is not valid; assuming current")
        elif version > SETTINGS_VERSION:
            self.warnings.append(
                f"Settings file was written by a newer Almanac (version {version}); "
                f"reading the settings this version understands"
            )

        values: dict[str, Any] = {}
        for field in dataclasses.fields(Settings):
            name = field.name
            if name == "version" or name not in data:
                continue  # unknown keys are ignored; missing ones keep their defaults
            value = _coerce(name, data[name])
            if name == "documents_folders":
                value = self._usable_folders(value)
                if value is None:
                    continue
            problems = _CHECKS[name](value)
            if problems:
                default = getattr(defaults, name)
                self.warnings.append(f"{'; '.join(problems)}; using the default ({default!r})")
                continue
            values[name] = value

        settings = dataclasses.replace(defaults, **values)
        if _check_token_budget(settings):
            fixed = min(defaults.max_tokens, settings.context_size // 2)
            self.warnings.append(
                f"Answer length {settings.max_tokens} does not fit the context size "
                f"{settings.context_size}; using {fixed}"
            )
            settings = dataclasses.replace(settings, max_tokens=fixed)
        return settings

    def _usable_folders(self, value: Any) -> tuple[str, ...] | None:
        # Drop only the folders that are gone (an unplugged drive) rather than all of them.
        if not isinstance(value, tuple) or not all(isinstance(f, str) for f in value):
            self.warnings.append(
                "Documents folders must be a list of folder paths; using the default (no folders)"
            )
            return None
        kept: list[str] = []
        for folder in value:
            if folder.strip() and Path(folder).expanduser().is_dir():
                kept.append(folder)
            else:
                self.warnings.append(f"Documents folder does not exist: {folder}; left out")
        return tuple(kept)

    def _keep_copy_of_bad_file(self, problem: str) -> None:
        # The next save would overwrite the file; keep what the user had so a hand edit with a typo
        # is not lost.
        backup = self.path.with_name(self.path.name + ".invalid")
        try:
            shutil.copyfile(self.path, backup)
            kept = f"; the file was copied to {backup}"
        except OSError:
            kept = ""
        self.warnings.append(f"Settings file {self.path} {problem}; using defaults{kept}")

    def save(self, settings: Settings) -> None:
        """Write the settings atomically; invalid settings raise SettingsError and write nothing."""
        reasons = validate_settings(settings)
        if reasons:
            raise SettingsError(reasons)
        text = json.dumps(_to_json(settings), indent=2, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Temp file in the same folder, then os.replace: a crash mid-write leaves either the old
        # file or the new one, never a truncated mix.
        fd, tmp_name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def effective_system_prompt(self, settings: Settings) -> str:
        if settings.system_prompt is not None and settings.system_prompt.strip():
            return settings.system_prompt.strip()
        return default_system_prompt()
