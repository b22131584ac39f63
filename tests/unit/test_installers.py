"""The Windows installer can't run here: keep it doing what the checked Linux one does."""

from __future__ import annotations

import re
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[2] / "packaging" / "bundle"


def _checked_folders_sh(text: str) -> set[str]:
    match = re.search(r"for folder in \(([^)]*)\):", text)
    assert match, "install.sh no longer lists the folders it checks"
    return set(re.findall(r'"([\w.-]+)"', match.group(1)))


def _checked_folders_ps1(text: str) -> set[str]:
    match = re.search(r"foreach \(\$folder in ([^)]*)\)", text)
    assert match, "install.ps1 no longer lists the folders it checks"
    return set(re.findall(r'"([\w.-]+)"', match.group(1)))


def test_both_installers_refuse_unlisted_files_in_the_same_folders() -> None:
    sh = _checked_folders_sh((BUNDLE / "install.sh").read_text(encoding="utf-8"))
    ps1 = _checked_folders_ps1((BUNDLE / "install.ps1").read_text(encoding="utf-8"))
    assert "default-model" in sh
    assert sh == ps1


def test_both_installers_install_and_prepare_the_default_model() -> None:
    for name in ("install.sh", "install.ps1"):
        text = (BUNDLE / name).read_text(encoding="utf-8")
        assert "default-model" in text.split("prepare_default_model", 1)[0], name
        assert "--no-index --no-deps" in text, name
        assert "prepare_default_model()" in text, name
