"""What can go wrong in the recipe, as exceptions whose first line says what and where."""

from __future__ import annotations

from collections.abc import Sequence


class FinetuneError(Exception):
    """The recipe cannot go on. ``str()`` starts with a one-line summary."""


class RecipeError(FinetuneError):
    """The recipe file or an option is invalid (names the file and the key)."""


class BaseModelError(FinetuneError):
    """The base model folder is unusable (missing files, unsupported architecture)."""


class DataError(FinetuneError):
    """Training data problems, each naming its file and line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "invalid training data"
        more = len(self.problems) - 1
        summary = first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        super().__init__("\n".join([summary, *self.problems[1:]]))
