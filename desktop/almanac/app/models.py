"""Model selection, the use case both front ends share: which chat model answers (the rule is
``almanac.app.services.choose_model``), and adding a GGUF file: checked against the catalog, then
saved in Settings as the user's model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from almanac.app.environment import Environment
from almanac.app.services import ModelChoice, choose_model
from almanac.app.settings import Settings, SettingsStore

if TYPE_CHECKING:
    # The catalog reads GGUF headers (gguf, numpy): imported when a model is checked, not by
    # the desktop window before it is on screen.
    from almanac.core.llm.catalog import AddedModel

ModelListener = Callable[[ModelChoice], None]


def add_model(path: Path, *, progress: Callable[[int, int], None] | None = None) -> AddedModel:
    """``almanac.core.llm.catalog.add_model``, imported when a model is first checked."""
    from almanac.core.llm import catalog

    return catalog.add_model(path, progress=progress)


class ModelSelection:
    """The user's model as Settings records it; ``on_change`` hears the new choice after a model
    is added (a front end reloads its engine on it)."""

    def __init__(
        self,
        settings_store: SettingsStore,
        settings: Settings,
        *,
        environment: Environment | None = None,
        on_change: ModelListener | None = None,
    ) -> None:
        self.settings_store = settings_store
        self.settings = settings
        self.environment = environment
        self.on_change = on_change

    def current(self) -> ModelChoice:
        chosen = self.settings.model_path
        return choose_model(Path(chosen) if chosen else None, env=self.environment)

    def check(
        self, path: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> AddedModel:
        """Check the GGUF (header; hash against the catalog, seconds for a large file: a front
        end runs this off its GUI thread). Raises what the check raises."""
        return add_model(path, progress=progress)

    def use(self, added: AddedModel) -> Settings:
        """Save a checked model as the user's model. Raises what saving raises; Settings stay
        as they were then."""
        new = dataclasses.replace(self.settings, model_path=str(added.path))
        self.settings_store.save(new)
        self.settings = new
        if self.on_change is not None:
            self.on_change(self.current())
        return new

    def add(
        self, path: Path, *, progress: Callable[[int, int], None] | None = None
    ) -> tuple[AddedModel, Settings]:
        """``check`` then ``use``."""
        added = self.check(path, progress=progress)
        return added, self.use(added)
