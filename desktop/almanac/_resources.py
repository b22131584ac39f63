"""Where the app's own data files are: prompts, sample documents, icons, the model catalog and the
default model (manifest, LoRA adapter, card).

The repository keeps them at its top level (``resources/``, ``models/``). An installed wheel carries
them as package data in ``almanac/_data/`` with the same layout below it (``setup.py`` copies them
there at build time), found through ``importlib.resources``. A source checkout, an editable install
and the PyInstaller one-folder app have no ``_data`` folder and read them from the folder two above
the package (the repository root; ``dist/almanac/`` for PyInstaller, see its spec).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGED_DATA = "_data"
# What the installed app reads, relative to the data root; setup.py packages exactly these (the
# default model's training data stays in the repository).
PACKAGED_TREES = ("resources/prompts", "resources/sample-kb", "resources/icons", "models/default")
PACKAGED_FILES = ("models/catalog.json",)
UNPACKAGED = ("models/default/data",)


def data_root() -> Path:
    """The folder that holds ``resources/`` and ``models/``."""
    packaged = resources.files("almanac").joinpath(PACKAGED_DATA)
    # A package installed from a wheel is a plain folder, so its Traversable is a real Path:
    # llama.cpp and the ingestor need file system paths, not readers.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2]


def prompts_dir() -> Path:
    return data_root() / "resources" / "prompts"


def sample_kb_dir() -> Path:
    return data_root() / "resources" / "sample-kb"


def icons_dir() -> Path:
    return data_root() / "resources" / "icons"


def models_dir() -> Path:
    return data_root() / "models"


def catalog_path() -> Path:
    return models_dir() / "catalog.json"


def default_model_dir() -> Path:
    return models_dir() / "default"
