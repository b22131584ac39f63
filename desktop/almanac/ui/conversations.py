"""The conversation list beside the chat: search, the list, New / Rename / Delete.

A widget of its own (the main window only hears "this conversation", "new", "rename", "delete"),
so that the window stays a shell around small parts. It reads the history to list conversations
and never writes it: renaming and deleting are the window's, which also knows what is streaming.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from almanac.app.history import HistoryStore

__all__ = ["ConversationSidebar"]


class ConversationSidebar(QWidget):
    selected = Signal(int)  # the user chose a conversation
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)

    def __init__(self, history: HistoryStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.history = history
        self.current_id: int | None = None  # the conversation the chat shows
        self.search_box = QLineEdit()
        self.search_box.setAccessibleName("Search conversations")
        self.search_box.setPlaceholderText("Search conversations")
        self.search_box.setClearButtonEnabled(True)
        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(150)
        self.search_timer.timeout.connect(self.refresh)
        self.search_box.textChanged.connect(lambda _t: self.search_timer.start())
        self.conversation_list = QListWidget()
        self.conversation_list.setObjectName("conversations")
        self.conversation_list.setAccessibleName("Conversations")
        self.conversation_list.currentItemChanged.connect(self._on_current_changed)
        self.conversation_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversation_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.new_button = QPushButton("New chat")
        self.rename_button = QPushButton("Rename")
        self.delete_button = QPushButton("Delete")
        self.new_button.clicked.connect(self.new_requested)
        self.rename_button.clicked.connect(self._rename_clicked)
        self.delete_button.clicked.connect(self._delete_clicked)
        buttons = QHBoxLayout()
        for b in (self.new_button, self.rename_button, self.delete_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(self.search_box)
        layout.addWidget(self.conversation_list, 1)
        layout.addLayout(buttons)
        window = Qt.ShortcutContext.WindowShortcut
        # Alt+Up / Alt+Down walk the chats from anywhere in the window, the input included.
        QShortcut(QKeySequence("Alt+Up"), self, lambda: self.step(-1), context=window)
        QShortcut(QKeySequence("Alt+Down"), self, lambda: self.step(1), context=window)

    def refresh(self) -> None:
        query = self.search_box.text()
        conversations = self.history.list(query)
        self.conversation_list.blockSignals(True)
        self.conversation_list.clear()
        current: QListWidgetItem | None = None
        if not conversations:
            # An empty list says why it is empty and what to do, instead of staying blank.
            hint = (
                f"No conversation matches “{query.strip()}”."
                if query.strip()
                else "No conversations yet: ask a question to start one."
            )
            placeholder = QListWidgetItem(hint)
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            placeholder.setData(Qt.ItemDataRole.UserRole, None)
            self.conversation_list.addItem(placeholder)
        for conv in conversations:
            item = QListWidgetItem(conv.title)
            item.setToolTip(conv.title)
            item.setData(Qt.ItemDataRole.UserRole, conv.id)
            self.conversation_list.addItem(item)
            if conv.id == self.current_id:
                current = item
        if current is not None:
            self.conversation_list.setCurrentItem(current)
        self.conversation_list.blockSignals(False)
        self.update_buttons()

    def clear_current(self) -> None:
        """No conversation chosen (Ctrl+N): Rename and Delete have nothing to act on."""
        self.current_id = None
        self.conversation_list.blockSignals(True)
        # Not just the selection: the current item is what Rename and Delete act on.
        self.conversation_list.setCurrentRow(-1)
        self.conversation_list.clearSelection()
        self.conversation_list.blockSignals(False)
        self.update_buttons()

    def current_item(self) -> QListWidgetItem | None:
        """The chosen conversation's item; None after Ctrl+N or on the "no matches" line."""
        item = self.conversation_list.currentItem()
        if item is None or not isinstance(item.data(Qt.ItemDataRole.UserRole), int):
            return None
        return item

    def update_buttons(self) -> None:
        has = self.current_item() is not None
        self.rename_button.setEnabled(has)
        self.delete_button.setEnabled(has)

    def step(self, delta: int) -> None:
        ids = [
            self.conversation_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.conversation_list.count())
        ]
        rows = [r for r, cid in enumerate(ids) if isinstance(cid, int)]
        if not rows:
            return
        here = self.conversation_list.currentRow()
        if here in rows:
            row = rows[max(0, min(len(rows) - 1, rows.index(here) + delta))]
        else:
            row = rows[0] if delta > 0 else rows[-1]
        self.conversation_list.setCurrentRow(row)

    def _on_current_changed(
        self, current: QListWidgetItem | None, _previous: QListWidgetItem | None
    ) -> None:
        self.update_buttons()
        if current is None:
            return
        cid = current.data(Qt.ItemDataRole.UserRole)
        if isinstance(cid, int) and cid != self.current_id:
            self.selected.emit(cid)

    def _rename_clicked(self) -> None:
        item = self.current_item()
        if item is None:
            return
        title, ok = QInputDialog.getText(self, "Rename conversation", "Title:", text=item.text())
        if ok:
            self.rename_requested.emit(int(item.data(Qt.ItemDataRole.UserRole)), title)

    def _delete_clicked(self) -> None:
        item = self.current_item()
        if item is None:
            return
        answer = QMessageBox.question(self, "Delete conversation", f"Delete “{item.text()}”?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(int(item.data(Qt.ItemDataRole.UserRole)))
