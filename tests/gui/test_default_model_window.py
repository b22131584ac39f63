"""First start of the window with Almanac's default model: selected and loaded without any setting,
and when it is damaged, a notice that says so and passages-only answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from almanac.app.environment import DEFAULT_MODEL_DIR_ENV, NO_DEFAULT_MODEL_ENV
from almanac.app.history import HistoryStore
from almanac.app.services import Services
from almanac.app.settings import Settings, SettingsStore
from almanac.core.system.hashing import sha256_file
from almanac.ui.main_window import MainWindow
from almanac.ui.workers import ModelWorker, TaskRunner


def _default_folder(root: Path, gguf: Path) -> Path:
    folder = root / "default"
    folder.mkdir()
    shutil.copy(gguf, folder / "base.gguf")
    manifest = {
        "name": "Tiny Default",
        "base": {
            "file": "base.gguf",
            "sha256": sha256_file(gguf),
            "size_bytes": gguf.stat().st_size,
        },
        "adapter": None,
    }
    (folder / "default-model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture
def window_factory(qtbot, tmp_path, make_kb, embedder, sample_kb, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(sample_kb / "faq.md", docs / "faq.md")
    kb = make_kb()
    kb.ingestor.ingest([docs])
    store = SettingsStore(tmp_path / "settings.json")
    store.save(Settings(documents_folders=(str(docs),)))  # no model_path: nothing chosen
    monkeypatch.delenv(NO_DEFAULT_MODEL_ENV, raising=False)
    monkeypatch.delenv("ALMANAC_MODEL", raising=False)
    windows: list[MainWindow] = []

    def factory(default_dir: Path, *, first_start: bool = False) -> MainWindow:
        monkeypatch.setenv(DEFAULT_MODEL_DIR_ENV, str(default_dir))
        services = Services(kb.store, embedder, kb.ingestor, kb.searcher)
        window = MainWindow(
            services,
            store,
            HistoryStore(tmp_path / "h.sqlite3"),
            [docs],
            TaskRunner(),
            ModelWorker(),
            first_start=first_start,
        )
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield factory
    for window in windows:
        window.close()


def test_first_start_selects_and_loads_the_default_model(
    qtbot, window_factory, tmp_path, tiny_gguf
):
    window = window_factory(_default_folder(tmp_path, tiny_gguf))
    qtbot.waitUntil(lambda: window.model_status.text().startswith("Model:"), timeout=60000)
    assert window.banner.isHidden()  # no "No model" banner: answers are written by the model
    assert window.settings.model_path is None  # chosen by default, not written into Settings
    # Called by its manifest's name, not by its base file's.
    assert window.model_status.text().startswith("Model: Tiny Default · llama.cpp")


def test_a_damaged_default_model_is_reported_and_answers_are_passages(
    qtbot, window_factory, tmp_path, tiny_gguf
):
    folder = _default_folder(tmp_path, tiny_gguf)
    data = bytearray((folder / "base.gguf").read_bytes())
    data[-1] ^= 0xFF  # same size: only the hash, checked on the loading worker, finds it
    (folder / "base.gguf").write_bytes(bytes(data))
    window = window_factory(folder)
    qtbot.waitUntil(lambda: "damaged or altered" in window.banner_label.text(), timeout=60000)
    assert not window.model_status.text().startswith("Model:")
    (folder / "default-model.json").unlink()
    window.load_model()
    qtbot.waitUntil(lambda: "manifest is missing" in window.notice.text(), timeout=10000)
    assert window.banner.isVisible() and window.model_status.text() == "Sources-only"


def test_the_first_start_suggests_adding_a_model_only_when_there_is_none(
    qtbot, window_factory, tmp_path, tiny_gguf, monkeypatch
):
    with_default = window_factory(_default_folder(tmp_path, tiny_gguf), first_start=True)
    welcome = with_default.transcript.welcome_html
    assert "sample documents" in welcome
    assert "add a model" not in welcome  # the default model writes answers already
    monkeypatch.setenv(NO_DEFAULT_MODEL_ENV, "1")
    without = window_factory(tmp_path / "no-default-here", first_start=True)
    assert "add a model for written answers" in without.transcript.welcome_html
