"""The library: every document in the index with its status, and the actions on it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
    SignalInstance,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from almanac.core.records import DocumentInfo, DocumentStatus

_COLUMNS = ("Document", "Status", "Error", "Chunks", "Indexed")
AnyIndex = QModelIndex | QPersistentModelIndex


class DocumentsModel(QAbstractTableModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[DocumentInfo] = []

    def set_documents(self, documents: Sequence[DocumentInfo]) -> None:
        self.beginResetModel()
        self._rows = sorted(documents, key=lambda d: (d.source, d.rel_path or d.path))
        self.endResetModel()

    def documents(self) -> list[DocumentInfo]:
        return list(self._rows)

    def document(self, row: int) -> DocumentInfo:
        return self._rows[row]

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return _COLUMNS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        doc = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return doc.rel_path or doc.path
            if col == 1:
                return doc.status.value
            if col == 2:
                return doc.error
            if col == 3:
                return doc.chunk_count
            if col == 4:
                if not doc.indexed_at:
                    return ""
                return dt.datetime.fromtimestamp(doc.indexed_at).strftime("%Y-%m-%d %H:%M")
        if role == Qt.ItemDataRole.ToolTipRole:
            return doc.path if col == 0 else (doc.error or None)
        if role == Qt.ItemDataRole.ForegroundRole and doc.status is DocumentStatus.ERROR:
            return QColor(179, 38, 30)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class LibraryView(QWidget):
    """Shows documents; the window does the work (on its task runner) when a button is pressed."""

    reindex_requested = Signal(list)  # list[str] of document paths
    remove_requested = Signal(list)
    open_requested = Signal(str)
    refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("library")
        self.model = DocumentsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(_COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(lambda index: self._open_row(index.row()))

        self.folders = QLabel()
        self.folders.setObjectName("libraryFolders")
        self.folders.setTextFormat(Qt.TextFormat.PlainText)  # paths are shown, never interpreted
        self.folders.setWordWrap(True)
        self.totals = QLabel()
        self.totals.setObjectName("libraryTotals")
        self.reindex_button = QPushButton("Re-index")
        self.remove_button = QPushButton("Remove")
        self.open_button = QPushButton("Open")
        self.refresh_button = QPushButton("Refresh")
        self.reindex_button.clicked.connect(lambda: self._emit_selected(self.reindex_requested))
        self.remove_button.clicked.connect(lambda: self._emit_selected(self.remove_requested))
        self.open_button.clicked.connect(self._open_selected)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)

        # The totals wrap on their own line: beside the buttons they set the pane's minimum
        # width, which made the window grow when the source pane opened.
        self.totals.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.refresh_button, self.open_button, self.reindex_button, self.remove_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.folders)
        layout.addWidget(self.totals)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.set_documents([])

    def set_folders(self, folders: Sequence[Path]) -> None:
        shown = "; ".join(str(f) for f in folders) or "none (add one in Settings)"
        self.folders.setText(f"Documents folders: {shown}")

    def set_documents(self, documents: Sequence[DocumentInfo]) -> None:
        self.model.set_documents(documents)
        errors = sum(1 for d in documents if d.status is DocumentStatus.ERROR)
        chunks = sum(d.chunk_count for d in documents)
        text = f"{len(documents)} documents · {chunks} chunks"
        if errors:
            text += f" · {errors} with errors"
        self.totals.setText(text)
        self._update_buttons()

    def selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.document(r).path for r in rows]

    def select_path(self, path: str) -> bool:
        for row, doc in enumerate(self.model.documents()):
            if doc.path == path:
                self.table.selectRow(row)
                return True
        return False

    def _update_buttons(self) -> None:
        has = bool(self.table.selectionModel().selectedRows())
        for b in (self.reindex_button, self.remove_button, self.open_button):
            b.setEnabled(has)

    def _emit_selected(self, signal: SignalInstance) -> None:
        paths = self.selected_paths()
        if paths:
            signal.emit(paths)

    def _open_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.open_requested.emit(paths[0])

    def _open_row(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.open_requested.emit(self.model.document(row).path)
