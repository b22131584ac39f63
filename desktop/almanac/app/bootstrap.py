"""Start-up shared by the command line and the desktop window: the offline switches, the
environment, the user's settings, once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from almanac.app.environment import Environment, read_environment
from almanac.app.services import default_kb_dir
from almanac.app.settings import Settings, SettingsStore, default_settings_path
from almanac.core.system.offline import enforce_offline_env


@dataclass(frozen=True, slots=True)
class Bootstrap:
    environment: Environment
    settings_store: SettingsStore
    settings: Settings
    first_start: bool  # no settings file yet

    @property
    def kb_dir(self) -> Path:
        return default_kb_dir(self.environment)


def bootstrap() -> Bootstrap:
    # First, before anything imports a library that reads the offline switches at import time.
    enforce_offline_env()
    environment = read_environment()
    path = default_settings_path()
    store = SettingsStore(path)
    first_start = not path.exists()
    return Bootstrap(environment, store, store.load(), first_start)
