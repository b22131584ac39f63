"""An installed (non-editable) wheel carries the app's data and the app finds it there, not in the
source checkout it was built from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from almanac import _resources

REPO = Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip")


def test_a_checkout_reads_the_top_level_folders() -> None:
    assert _resources.data_root() == REPO
    for part in (*_resources.PACKAGED_TREES, *_resources.PACKAGED_FILES):
        assert (REPO / part).exists(), part
    assert (_resources.prompts_dir() / "system.txt").is_file()


def test_the_wheel_holds_the_data_and_the_installed_app_reads_it(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(wheels)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("almanac-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "almanac/" + _resources.PACKAGED_DATA
    for expected in (
        "resources/prompts/system.txt",
        "resources/sample-kb/faq.md",
        "resources/icons/almanac.svg",
        "models/catalog.json",
        "models/default/default-model.json",
    ):
        assert f"{data}/{expected}" in names, expected
    assert not any(n.startswith(f"{data}/models/default/data/") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
    )
    probe = (
        "import json, almanac\n"
        "from almanac._resources import data_root\n"
        "from almanac.app.services import sample_kb_folder\n"
        "from almanac.core.answering.prompting import default_system_prompt\n"
        "from almanac.core.llm.catalog import default_catalog_path, load_catalog\n"
        "from almanac.core.llm.default_model import default_model_dir\n"
        "print(json.dumps({'package': almanac.__file__, 'root': str(data_root()),\n"
        "    'prompt': default_system_prompt(), 'catalog': str(default_catalog_path()),\n"
        "    'models': len(load_catalog()), 'default': str(default_model_dir()),\n"
        "    'samples': sorted(p.name for p in sample_kb_folder().iterdir())}))\n"
    )
    # The wheel's copy first on the path, ahead of the editable install's checkout.
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("ALMANAC_DEFAULT_MODEL_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    installed = target / "almanac"
    assert Path(seen["package"]).parent == installed
    assert Path(seen["root"]) == installed / _resources.PACKAGED_DATA
    assert seen["prompt"] == (REPO / "resources/prompts/system.txt").read_text("utf-8").strip()
    assert Path(seen["catalog"]).is_relative_to(installed)
    assert seen["models"] > 0
    assert Path(seen["default"]).is_relative_to(installed)
    assert "faq.md" in seen["samples"]
