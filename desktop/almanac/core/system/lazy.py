"""A package's public names, imported from their modules on first use.

The desktop window is on screen before numpy, LanceDB and onnxruntime load; a package whose
``__init__`` imported its submodules would load them with the package. Such a package lists its
names instead and sets ``__getattr__ = lazy_names(__name__, {name: module})``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_names(package: str, modules: Mapping[str, str]) -> Callable[[str], object]:
    """The package's module-level ``__getattr__``: each name imported once, then kept."""

    def getattr_(name: str) -> object:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    return getattr_
