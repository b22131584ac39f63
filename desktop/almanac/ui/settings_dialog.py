"""The settings dialog: every field of ``Settings``; invalid values are refused with reasons."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from almanac.app.settings import (
    MAX_CONTEXT,
    MAX_MAX_TOKENS,
    MAX_SOURCES,
    MAX_TEMPERATURE,
    MAX_THREADS,
    MIN_CONTEXT,
    MIN_MAX_TOKENS,
    MIN_SOURCES,
    THEMES,
    Settings,
    SettingsError,
    SettingsStore,
    validate_settings,
)
from almanac.core.answering.prompting import default_system_prompt
from almanac.ui.theme import apply_theme

__all__ = ["SettingsDialog", "apply_theme", "folder_paths"]


class SettingsDialog(QDialog):
    """Edits a copy of the settings; ``accept`` saves through the store and keeps the result."""

    def __init__(
        self, settings: Settings, store: SettingsStore, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Almanac settings")
        self.setObjectName("settingsDialog")
        self._store = store
        self._original = settings
        self.saved: Settings | None = None

        form = QFormLayout()
        self.model_path = QLineEdit(settings.model_path or "")
        self.model_path.setPlaceholderText("none: sources-only answers")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_model)
        row = QHBoxLayout()
        row.addWidget(self.model_path, 1)
        row.addWidget(browse)
        form.addRow("Model (GGUF)", row)

        self.gpu_layers = QComboBox()
        self.gpu_layers.setEditable(True)
        self.gpu_layers.addItems(["auto", "all", "none"])
        self.gpu_layers.setCurrentText(settings.gpu_layers)
        form.addRow("GPU layers", self.gpu_layers)

        self.threads = QSpinBox()
        self.threads.setRange(0, MAX_THREADS)
        self.threads.setSpecialValueText("auto (physical cores)")
        self.threads.setValue(settings.threads or 0)
        form.addRow("Threads", self.threads)

        self.context_size = QSpinBox()
        self.context_size.setRange(1, MAX_CONTEXT * 2)  # out-of-range values get a reason
        self.context_size.setSingleStep(512)
        self.context_size.setValue(settings.context_size)
        self.context_size.setToolTip(f"{MIN_CONTEXT} to {MAX_CONTEXT} tokens")
        form.addRow("Context size", self.context_size)

        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, MAX_MAX_TOKENS * 2)
        self.max_tokens.setValue(settings.max_tokens)
        self.max_tokens.setToolTip(f"{MIN_MAX_TOKENS} to {MAX_MAX_TOKENS} tokens")
        form.addRow("Answer length (tokens)", self.max_tokens)

        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, MAX_TEMPERATURE * 2)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.temperature.setValue(settings.temperature)
        form.addRow("Temperature", self.temperature)

        self.sources = QSpinBox()
        self.sources.setRange(0, MAX_SOURCES * 2)
        self.sources.setValue(settings.sources)
        self.sources.setToolTip(f"{MIN_SOURCES} to {MAX_SOURCES}")
        form.addRow("Sources per answer", self.sources)

        self.relevance_floor = QDoubleSpinBox()
        self.relevance_floor.setRange(-1.0, 2.0)
        self.relevance_floor.setSingleStep(0.05)
        self.relevance_floor.setDecimals(2)
        self.relevance_floor.setValue(settings.relevance_floor)
        form.addRow("Relevance floor", self.relevance_floor)

        self.documents_folders = QPlainTextEdit("\n".join(settings.documents_folders))
        self.documents_folders.setPlaceholderText("one folder per line")
        self.documents_folders.setFixedHeight(70)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self._browse_folder)
        folders = QVBoxLayout()
        folders.addWidget(self.documents_folders)
        folders.addWidget(add_folder, 0, Qt.AlignmentFlag.AlignLeft)
        form.addRow("Documents folders", folders)

        self.copy_dropped_files = QCheckBox("Copy dropped files into the first documents folder")
        self.copy_dropped_files.setChecked(settings.copy_dropped_files)
        form.addRow("", self.copy_dropped_files)
        self.poll_folders = QCheckBox("Check folders by polling (network drives)")
        self.poll_folders.setChecked(settings.poll_folders)
        form.addRow("", self.poll_folders)

        self.system_prompt = QPlainTextEdit(store.effective_system_prompt(settings))
        self.system_prompt.setMinimumHeight(110)
        reset = QPushButton("Reset to default")
        reset.clicked.connect(self.reset_system_prompt)
        prompt = QVBoxLayout()
        prompt.addWidget(self.system_prompt)
        prompt.addWidget(reset, 0, Qt.AlignmentFlag.AlignLeft)
        form.addRow("System prompt", prompt)

        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(settings.theme)
        form.addRow("Theme", self.theme)

        self.errors = QLabel()
        self.errors.setObjectName("settingsErrors")
        self.errors.setWordWrap(True)
        self.errors.setStyleSheet("color: #b3261e;")
        self.errors.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.errors)
        layout.addWidget(self.buttons)

    # -- values -----------------------------------------------------------------------------------

    def current(self) -> Settings:
        """The settings as the form shows them (possibly invalid)."""
        prompt = self.system_prompt.toPlainText().strip()
        folders = tuple(
            line.strip()
            for line in self.documents_folders.toPlainText().splitlines()
            if line.strip()
        )
        return dataclasses.replace(
            self._original,
            model_path=self.model_path.text().strip() or None,
            gpu_layers=self.gpu_layers.currentText().strip(),
            threads=self.threads.value() or None,
            context_size=self.context_size.value(),
            temperature=round(self.temperature.value(), 2),
            sources=self.sources.value(),
            relevance_floor=round(self.relevance_floor.value(), 2),
            documents_folders=folders,
            copy_dropped_files=self.copy_dropped_files.isChecked(),
            poll_folders=self.poll_folders.isChecked(),
            # The default text stays "unset" so that a new version's default prompt applies.
            system_prompt=None if prompt == default_system_prompt() else (prompt or ""),
            theme=self.theme.currentText(),
            max_tokens=self.max_tokens.value(),
        )

    def reasons(self) -> list[str]:
        return validate_settings(self.current())

    def reset_system_prompt(self) -> None:
        self.system_prompt.setPlainText(default_system_prompt())

    def accept(self) -> None:
        settings = self.current()
        reasons = validate_settings(settings)
        if not reasons:
            try:
                self._store.save(settings)
            except SettingsError as exc:
                reasons = exc.reasons
            except OSError as exc:
                reasons = [f"Could not write {self._store.path}: {exc.strerror or exc}"]
        if reasons:
            self.errors.setText("\n".join(f"• {r}" for r in reasons))
            self.errors.show()
            return
        self.saved = settings
        super().accept()

    # -- pickers ----------------------------------------------------------------------------------

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a model", "", "GGUF models (*.gguf)")
        if path:
            self.model_path.setText(path)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a documents folder")
        if folder:
            text = self.documents_folders.toPlainText().rstrip()
            self.documents_folders.setPlainText(f"{text}\n{folder}".strip())


# -- themes: ui/theme.py (apply_theme stays importable from here) ----------------------------


def folder_paths(settings: Settings) -> list[Path]:
    return [Path(f).expanduser() for f in settings.documents_folders]
