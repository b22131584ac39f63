"""The library: every document in the index with its status, and the actions on it.

Nothing here surprises: Remove asks whether to take the document out of the index (it then stays
out, listed under "Excluded", until the user includes it again) or to delete the file; columns
sort; a filter box narrows the list; the totals count each status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
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
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from almanac.core.records import DocumentInfo, DocumentStatus
from almanac.core.system.discovery import display_key

_COLUMNS = ("Document", "Status", "Error", "Chunks", "Indexed")
AnyIndex = QModelIndex | QPersistentModelIndex
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
REMOVE_FROM_INDEX = "index"
DELETE_FILE = "delete"


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
        if role == SORT_ROLE:
            return (
                doc.rel_path or doc.path,
                doc.status.value,
                doc.error,
                doc.chunk_count,
                doc.indexed_at,
            )[col]
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
    remove_requested = Signal(list)  # out of the index, kept on disk, excluded until included
    delete_requested = Signal(list)  # the files themselves (and so out of the index)
    include_requested = Signal(list)  # excluded keys to index again
    open_requested = Signal(str)
    refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("library")
        self.model = DocumentsModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)  # any column: name, status or error text
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.table = QTableView()
        self.table.setAccessibleName("Documents")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(_COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(lambda index: self._open_row(index))

        self.filter_box = QLineEdit()
        self.filter_box.setObjectName("libraryFilter")
        self.filter_box.setAccessibleName("Filter documents")
        self.filter_box.setPlaceholderText("Filter by name, status or error")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.textChanged.connect(self._filter_changed)
        self.folders = QLabel()
        self.folders.setObjectName("libraryFolders")
        self.folders.setTextFormat(Qt.TextFormat.PlainText)  # paths are shown, never interpreted
        self.folders.setWordWrap(True)
        self.totals = QLabel()
        self.totals.setObjectName("libraryTotals")
        # The totals wrap on their own line: beside the buttons they set the pane's minimum
        # width, which made the window grow when the source pane opened.
        self.totals.setWordWrap(True)
        self.empty = QLabel()
        self.empty.setObjectName("libraryEmpty")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.reindex_button = QPushButton("Re-index")
        self.remove_button = QPushButton("Remove…")
        self.open_button = QPushButton("Open")
        self.refresh_button = QPushButton("Refresh")
        self.reindex_button.clicked.connect(lambda: self._emit_selected(self.reindex_requested))
        self.remove_button.clicked.connect(self._remove_selected)
        self.open_button.clicked.connect(self._open_selected)
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)

        self.excluded_label = QLabel()
        self.excluded_list = QListWidget()
        self.excluded_list.setAccessibleName("Excluded from the index")
        self.excluded_list.setMaximumHeight(90)
        self.excluded_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.include_button = QPushButton("Include again")
        self.include_button.clicked.connect(self._include_selected)
        self.excluded_list.itemSelectionChanged.connect(self._update_buttons)
        self.excluded_box = QWidget()
        excluded = QVBoxLayout(self.excluded_box)
        excluded.setContentsMargins(0, 0, 0, 0)
        excluded_row = QHBoxLayout()
        excluded_row.addWidget(self.excluded_label, 1)
        excluded_row.addWidget(self.include_button)
        excluded.addLayout(excluded_row)
        excluded.addWidget(self.excluded_list)

        top = QHBoxLayout()
        top.addWidget(self.filter_box, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.refresh_button, self.open_button, self.reindex_button, self.remove_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.folders)
        layout.addLayout(top)
        layout.addWidget(self.totals)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addLayout(buttons)
        layout.addWidget(self.excluded_box)
        self._documents: list[DocumentInfo] = []
        self.set_excluded([])
        self.set_documents([])

    def set_folders(self, folders: Sequence[Path]) -> None:
        shown = "; ".join(str(f) for f in folders) or "none (add one in Settings)"
        self.folders.setText(f"Documents folders: {shown}")

    def set_documents(self, documents: Sequence[DocumentInfo]) -> None:
        self._documents = list(documents)
        self.model.set_documents(documents)
        counts = {s: sum(1 for d in documents if d.status is s) for s in DocumentStatus}
        chunks = sum(d.chunk_count for d in documents)
        parts = [f"{len(documents)} documents", f"{counts[DocumentStatus.INDEXED]} indexed"]
        if counts[DocumentStatus.PENDING]:
            parts.append(f"{counts[DocumentStatus.PENDING]} pending")
        if counts[DocumentStatus.ERROR]:
            parts.append(f"{counts[DocumentStatus.ERROR]} with errors")
        if self.excluded_list.count():
            parts.append(f"{self.excluded_list.count()} excluded")
        parts.append(f"{chunks} chunks")
        self.totals.setText(" · ".join(parts))
        self._update_empty()
        self._update_buttons()

    def set_excluded(self, keys: Sequence[str]) -> None:
        """Documents removed from the index but kept on disk (index keys)."""
        self.excluded_list.clear()
        for key in keys:
            item = QListWidgetItem(display_key(key))
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setToolTip(display_key(key))
            self.excluded_list.addItem(item)
        count = len(keys)
        self.excluded_label.setText(
            f"Excluded from the index ({count}): kept on disk, not indexed until included again"
        )
        self.excluded_box.setVisible(count > 0)
        if self._documents or count:
            self.set_documents(self._documents)
        self._update_buttons()

    def selected_paths(self) -> list[str]:
        rows = sorted(
            {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        )
        return [self.model.document(r).path for r in rows]

    def select_path(self, path: str) -> bool:
        for row, doc in enumerate(self.model.documents()):
            if doc.path == path:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if not index.isValid():
                    return False  # filtered out
                self.table.selectRow(index.row())
                return True
        return False

    def confirm_remove(self, paths: Sequence[str]) -> str:
        """Ask what Remove means for these documents: REMOVE_FROM_INDEX, DELETE_FILE or ""."""
        names = ", ".join(Path(display_key(p)).name for p in paths[:3])
        if len(paths) > 3:
            names += f" and {len(paths) - 3} more"
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Remove documents")
        box.setText(f"Remove {names}?")
        box.setInformativeText(
            "Remove from index: the file stays where it is and is not indexed again until you "
            "include it again.\nDelete file: the file goes to the trash and out of the index."
        )
        from_index = box.addButton("Remove from index", QMessageBox.ButtonRole.AcceptRole)
        delete = box.addButton("Delete file", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(from_index)
        box.exec()
        clicked = box.clickedButton()
        if clicked is from_index:
            return REMOVE_FROM_INDEX
        if clicked is delete:
            return DELETE_FILE
        return ""

    def _remove_selected(self) -> None:
        paths = self.selected_paths()
        if not paths:
            return
        choice = self.confirm_remove(paths)
        if choice == REMOVE_FROM_INDEX:
            self.remove_requested.emit(paths)
        elif choice == DELETE_FILE:
            self.delete_requested.emit(paths)

    def _include_selected(self) -> None:
        keys = [str(i.data(Qt.ItemDataRole.UserRole)) for i in self.excluded_list.selectedItems()]
        if keys:
            self.include_requested.emit(keys)

    def _filter_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self._update_empty()

    def _update_empty(self) -> None:
        if not self._documents:
            text = (
                "No documents yet: drop files on this window or add a documents folder in Settings."
            )
        elif self.proxy.rowCount() == 0:
            text = f"No document matches “{self.filter_box.text().strip()}”."
        else:
            text = ""
        self.empty.setText(text)
        self.empty.setVisible(bool(text))

    def _update_buttons(self) -> None:
        has = bool(self.table.selectionModel().selectedRows())
        for b in (self.reindex_button, self.remove_button, self.open_button):
            b.setEnabled(has)
        self.include_button.setEnabled(bool(self.excluded_list.selectedItems()))

    def _emit_selected(self, signal: SignalInstance) -> None:
        paths = self.selected_paths()
        if paths:
            signal.emit(paths)

    def _open_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.open_requested.emit(paths[0])

    def _open_row(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        if source.isValid():
            self.open_requested.emit(self.model.document(source.row()).path)
