"""Package data from outside the package folder.

The repository keeps the app's data at its top level (resources/, models/); setuptools' package-data
only takes files inside a package, so the wheel build copies what the installed app reads into
almanac/_data/ (the list is almanac/_resources.py's, which reads it back). Editable installs and
source checkouts read the top-level folders directly. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _resources_module():  # noqa: ANN202  (a module object loaded by path; setup.py runs without mypy)
    # By path, not by import: the build may run before almanac's dependencies are installed.
    spec = importlib.util.spec_from_file_location(
        "_almanac_resources", HERE / "desktop" / "almanac" / "_resources.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads resources/ and models/ in place
            return
        res = _resources_module()
        dest = Path(self.build_lib) / "almanac" / res.PACKAGED_DATA
        skip = {HERE / part for part in res.UNPACKAGED}
        for tree in res.PACKAGED_TREES:
            shutil.copytree(
                HERE / tree,
                dest / tree,
                dirs_exist_ok=True,
                ignore=lambda folder, names: [n for n in names if Path(folder) / n in skip],
            )
        for file in res.PACKAGED_FILES:
            (dest / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HERE / file, dest / file)


setup(cmdclass={"build_py": BuildWithData})
