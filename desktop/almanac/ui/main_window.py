"""The main window: conversations, the chat, sources, the library; drops, model and settings.

The window is on screen before the knowledge base is open: the conversations, the chat and the
question box work at once, and the services (``almanac.app.services`` builds them, on a thread)
come in through ``attach_services`` (or the constructor, when they are ready before it). Until
then the status bar says the knowledge base is opening, the library waits for it, and a question
sent meanwhile is answered as soon as it is open. Nothing slow runs on the GUI thread: ingestion,
library queries and model checks go through the ``TaskRunner``; answering (search + generation)
goes through the ``ModelWorker``, which owns the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QWidget,
)

from almanac.app.chat import ChatSession, Question
from almanac.app.chat_export import export_file_name
from almanac.app.environment import Environment
from almanac.app.history import HistoryStore
from almanac.app.library import LibraryChange, is_inside
from almanac.app.models import ModelSelection
from almanac.app.settings import Settings, SettingsStore
from almanac.core.documents import SUPPORTED_EXTENSIONS, is_supported
from almanac.core.records import (
    Answer,
    Citation,
    DocumentInfo,
    IngestProgress,
    IngestReport,
)
from almanac.core.system.discovery import display_key
from almanac.ui.ask_controller import AskController
from almanac.ui.chat_pane import ChatPane
from almanac.ui.chat_view import Entry
from almanac.ui.conversations import ConversationSidebar
from almanac.ui.library_controller import LibraryController
from almanac.ui.library_view import LibraryView
from almanac.ui.model_controller import ModelController, first_start_hint
from almanac.ui.ocr_status import OcrStatus
from almanac.ui.settings_dialog import SettingsDialog, folder_paths
from almanac.ui.source_viewer import SourceViewer
from almanac.ui.sync_bridge import SyncBridge, describe_state
from almanac.ui.theme import apply_theme
from almanac.ui.window_state import WindowState
from almanac.ui.workers import ModelWorker, ProgressFn, TaskHandle, TaskRunner

if TYPE_CHECKING:
    # numpy, LanceDB, onnxruntime and gguf load behind the window (attach_services), not before
    # it is on screen: this module imports none of them.
    from almanac.app.services import Services
    from almanac.core.indexing.sync import SyncState

_MODEL_FIELDS = ("model_path", "gpu_layers", "threads", "context_size")
# What the window says while the services open behind it (app.py builds them on a thread).
OPENING_TEXT = "Opening your knowledge base…"
# A first start (no settings yet): without the model cache that `make install` prepares, the int8
# search model is exported once before it opens (true either way).
FIRST_START_TEXT = (
    "Opening your knowledge base; a first start may prepare the search model first "
    "(once, about half a minute on a laptop)…"
)
WAITING_TEXT = "Your question will be answered as soon as the knowledge base is open."


class MainWindow(QMainWindow):
    def __init__(
        self,
        services: Services | None,
        settings_store: SettingsStore,
        history: HistoryStore,
        kb_folders: list[Path],
        runner: TaskRunner,
        model_worker: ModelWorker,
        *,
        first_start: bool = False,
        environment: Environment | None = None,
    ) -> None:
        """``services`` None: they are opening and come through ``attach_services``.
        ``environment``: what app.bootstrap read (None: read the environment when needed)."""
        super().__init__()
        self.services: Services | None = None
        self.settings_store = settings_store
        self.history = history
        self.kb_folders = [Path(f) for f in kb_folders]
        self.runner = runner
        self.model_worker = model_worker
        self.settings: Settings = settings_store.load()
        # Which chat model answers (the user's, $ALMANAC_MODEL, or the default) and its loading.
        self.models = ModelSelection(settings_store, self.settings, environment=environment)
        self.model = ModelController(
            self.models, model_worker, runner, first_start=first_start, parent=self
        )
        self.first_start = first_start
        # The conversation on screen; the transcript only renders its turns.
        self.chat = ChatSession(history)
        # One question at a time, answered on the model worker and saved where it was asked;
        # made with the services, as is the library controller.
        self.asker: AskController | None = None
        self.library_controller: LibraryController | None = None
        self.ocr_status: OcrStatus | None = None
        # A question sent before the services are open: asked when they are (one at most, as
        # while an answer is generated).
        self._waiting: Question | None = None
        self._services_error = ""  # why the knowledge base could not be opened
        self._when_ready: list[Callable[[], object]] = []  # documents added meanwhile
        self._sync_wanted = False  # start_sync before the services: started with them
        self._indexing_label = ""
        self._closed = False
        self._library_requests = 0  # refresh_library: only the newest answer is shown
        self._viewer_width = 0  # the source pane's width when last closed
        self._sidebar_hidden = False  # the list made room for the source pane

        self.setWindowTitle("Almanac")
        self.setObjectName("mainWindow")
        self.resize(1280, 800)
        self.setAcceptDrops(True)
        self._build()
        model = self.model
        model.status.connect(self.model_status.setText)
        model.banner.connect(self.chat_pane.show_banner)
        model.notice.connect(self.show_notice)
        model.notice_cleared.connect(self._notice_cleared)
        model.message.connect(self.statusBar().showMessage)
        model.settings_saved.connect(self._model_saved)
        self.window_state = WindowState(settings_store.path.with_name("window.ini"))
        self._viewer_width = self.window_state.restore(self, self.splitter)
        self.viewer.hide()  # a restored splitter state may hold it open; it opens with a source
        apply_theme(self.settings.theme)
        self.refresh_conversations()
        self._update_banner()
        if services is not None:
            self.attach_services(services)
        else:
            self._show_opening()
        # The first-start hint is in the chat (and in the banner without a model); the status
        # bar is left to what is happening now, which is where the indexing progress shows.
        for warning in settings_store.warnings:
            self.show_notice(warning)

    # == layout ================================================================================

    def _build(self) -> None:
        # -- left: conversations (their own widget; the names below are its parts)
        sidebar = self.sidebar = ConversationSidebar(self.history)
        sidebar.selected.connect(self.open_conversation)
        sidebar.new_requested.connect(self.new_chat)
        sidebar.rename_requested.connect(self.rename_conversation)
        sidebar.delete_requested.connect(self.delete_conversation)
        self.search_box = sidebar.search_box
        self._search_timer = sidebar.search_timer
        self.conversation_list = sidebar.conversation_list
        self.new_button = sidebar.new_button
        self.rename_button = sidebar.rename_button
        self.delete_button = sidebar.delete_button

        # -- centre: banner, notice, transcript, actions, input (their own widget; the names
        # below are its parts)
        chat = self.chat_pane = ChatPane()
        self.banner = chat.banner
        self.banner_label = chat.banner_label
        self.add_model_button = chat.add_model_button
        self.notice = chat.notice
        self.notice_close = chat.notice_close
        self.transcript = chat.transcript
        self.copy_button = chat.copy_button
        self.regenerate_button = chat.regenerate_button
        self.export_button = chat.export_button
        self.input = chat.input
        self.send_button = chat.send_button
        self.stop_button = chat.stop_button
        self.add_model_button.clicked.connect(self.choose_model)
        self.transcript.citation_requested.connect(self.show_citation)
        self.transcript.link_refused.connect(
            lambda url: self.statusBar().showMessage(f"Links are not opened: {url}", 5000)
        )
        self.transcript.regenerate_requested.connect(self.regenerate)
        self.transcript.copied.connect(lambda text: self.statusBar().showMessage(text, 3000))
        self.copy_button.clicked.connect(self.copy_answer)
        self.regenerate_button.clicked.connect(self.regenerate)
        self.export_button.clicked.connect(lambda: self.export_conversation())
        self.input.submitted.connect(self.send)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop_generation)

        self.library = LibraryView()
        self.library.set_folders(self.kb_folders)
        self.library.refresh_requested.connect(self.refresh_library)
        self.library.reindex_requested.connect(lambda paths: self.reindex(paths))
        self.library.remove_requested.connect(lambda paths: self.remove_documents(paths))
        self.library.delete_requested.connect(lambda paths: self.delete_documents(paths))
        self.library.include_requested.connect(lambda keys: self.include_again(keys))
        self.library.open_requested.connect(lambda path: self.open_document(Path(path)))

        self.tabs = QTabWidget()
        self.tabs.addTab(chat, "Chat")
        self.tabs.addTab(self.library, "Library")

        # -- right: the source viewer
        self.viewer = SourceViewer()
        self.viewer.setObjectName("sourceViewer")
        self.viewer.close_requested.connect(self.close_source)
        self.viewer.hide()

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(sidebar)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.viewer)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([240, 640, 400])
        # A collapsed pane is a lost pane: the user closes the source with its button instead.
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)

        self.model_status = QLabel()
        self.sync_status = QLabel()
        self.sync_status.setObjectName("syncStatus")
        self.statusBar().addPermanentWidget(self.sync_status)
        self.statusBar().addPermanentWidget(self.model_status)
        self.sync = SyncBridge(self)
        self.sync.state.connect(self._on_sync_state)

        self._build_menu()
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop_generation)
        QShortcut(QKeySequence(Qt.Key.Key_F6), self, self.focus_next_pane)
        self._update_buttons()
        self._show_welcome()
        self.input.setFocus()

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self._action(menu.addAction("&New chat"), self.new_chat, QKeySequence.StandardKey.New)
        self._action(menu.addAction("Add &documents…"), self.choose_documents)
        self._action(menu.addAction("Add &model…"), self.choose_model)
        self._action(menu.addAction("&Export conversation…"), lambda: self.export_conversation())
        menu.addSeparator()
        self._action(menu.addAction("&Settings…"), self.open_settings, "Ctrl+,")
        menu.addSeparator()
        self._action(menu.addAction("&Quit"), self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self._action(view.addAction("&Chat"), lambda: self.tabs.setCurrentIndex(0))
        self._action(view.addAction("&Library"), self.show_library, "Ctrl+L")
        self._action(view.addAction("Close &source"), self.close_source, "Ctrl+W")

    @staticmethod
    def _action(
        action: QAction,
        slot: Callable[[], object],
        shortcut: QKeySequence.StandardKey | str | None = None,
    ) -> None:
        action.triggered.connect(lambda _checked=False: slot())
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))

    def _disconnect_worker(self) -> None:
        if self.asker is not None:
            self.asker.detach()
        self.model.detach()

    # == the services ==========================================================================

    @property
    def ready(self) -> bool:
        """The knowledge base and the embedder are open: asking and indexing work."""
        return self.services is not None

    def _show_opening(self) -> None:
        text = FIRST_START_TEXT if self.first_start else OPENING_TEXT
        self.sync_status.setText(text)
        # The library lists what the index holds: it waits for the index (it is not empty).
        self.library.setEnabled(False)
        self.library.totals.setText("")
        self.library.empty.setText(text)
        self.library.empty.show()

    def attach_services(self, services: Services) -> None:
        """The knowledge base and the embedder, once open: the library fills, the model loads,
        and a question sent meanwhile is asked now; documents added meanwhile are indexed and
        live sync starts (when ``start_sync`` was called before)."""
        if self.services is not None:
            raise RuntimeError("the services are attached once")
        if self._closed:
            return
        self.services = services
        # Every change to the index (this window's writes, live sync's batches): one signal.
        controller = self.library_controller = LibraryController(
            services.ingestor,
            self.kb_folders,
            self.sync,
            self.runner,
            copy_added=self.settings.copy_dropped_files,
            parent=self,
        )
        controller.changed.connect(self._on_library_changed)
        controller.ingest_started.connect(lambda label: self.statusBar().showMessage(f"{label}…"))
        controller.ingest_progress.connect(self._ingest_progress)
        controller.ingest_done.connect(self._ingest_done)
        controller.ingest_failed.connect(self._ingest_failed)
        asker = self.asker = AskController(services, self.chat, self.model_worker, self)
        asker.token.connect(self._on_token)
        asker.answered.connect(self._on_answered)
        asker.failed.connect(self._on_failed)
        # Scans are read by OCR outside the writer: their progress, Cancel, and the library
        # refreshed when the lane has written one (no batch announces that write).
        ocr = self.ocr_status = OcrStatus(services.ingestor.ocr_lane, self)
        ocr.file_done.connect(lambda _path: self.refresh_library())
        self.statusBar().insertPermanentWidget(0, ocr)
        if self.sync_status.text() in (OPENING_TEXT, FIRST_START_TEXT):
            self.sync_status.setText("")
        self.library.setEnabled(True)
        if self.library.empty.text() in (OPENING_TEXT, FIRST_START_TEXT):
            self.library.empty.setText("Reading the library…")
        self.refresh_library()
        self.load_model()
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            asker.ask(self.settings, waiting)
            if waiting.conversation_id == self.conversation_id:
                self.transcript.start_answer()
            self.statusBar().showMessage("Answering…")
        elif self.statusBar().currentMessage() == WAITING_TEXT:
            self.statusBar().clearMessage()
        pending, self._when_ready = self._when_ready, []
        for work in pending:
            work()
        if self._sync_wanted:
            self.start_sync()
        self._update_buttons()

    def services_failed(self, message: str) -> None:
        """The knowledge base could not be opened: the window says why, and asks nothing."""
        if self._closed or self.services is not None:
            return
        self._services_error = f"Your knowledge base could not be opened: {message}"
        self.sync_status.setText("Knowledge base not open")
        self.library.empty.setText(self._services_error)
        self.show_notice(self._services_error)
        self._when_ready.clear()
        waiting, self._waiting = self._waiting, None
        if waiting is not None and waiting.conversation_id == self.conversation_id:
            self.transcript.add_error(f"Could not answer: {self._services_error}")
        self.statusBar().clearMessage()
        self._update_buttons()

    def _when_open(self, work: Callable[[], object], said: str) -> None:
        """Run ``work`` once the services are open (now when they are)."""
        if self._services_error:
            self.show_notice(self._services_error)
        elif self.services is None:
            self._when_ready.append(work)
            self.statusBar().showMessage(said, 8000)
        else:
            work()

    # == notices and status ====================================================================

    def show_notice(self, text: str, kind: str = "") -> None:
        """``kind`` names the cause ("ingest", "model") so that fixing it clears the notice."""
        self.chat_pane.show_notice(text, kind)

    def clear_notice(self, kind: str) -> None:
        self.chat_pane.clear_notice(kind)

    def _update_banner(self) -> None:
        self.model.refresh_banner(self.settings)

    def _update_buttons(self) -> None:
        self.send_button.setEnabled(not self._generating and not self._services_error)
        self.stop_button.setEnabled(self._generating)
        has_answer = self.transcript.last_answer() is not None
        self.copy_button.setEnabled(has_answer)
        self.regenerate_button.setEnabled(
            not self._generating and self.conversation_id is not None and has_answer
        )
        self.export_button.setEnabled(self.conversation_id is not None)
        self.sidebar.update_buttons()

    def _show_welcome(self) -> None:
        if self.transcript.entries or self.transcript.streaming_text() is not None:
            return
        lines = [
            "<h3>Ask about your documents</h3>",
            "<p>Answers cite the passages they come from; click a <b>[n]</b> to open it.</p>",
        ]
        if self.first_start:
            with_model = self.model.choice(self.settings).path is not None
            lines.append(f"<p><i>{first_start_hint(with_model)}</i></p>")
        lines.append(
            "<p class='muted'>Enter sends · Shift+Enter new line · Esc stops · "
            "Ctrl+N new chat · Ctrl+W closes the source</p>"
        )
        self.transcript.set_welcome("".join(lines))

    # == conversations =========================================================================

    @property
    def conversation_id(self) -> int | None:
        return self.chat.conversation_id

    def refresh_conversations(self) -> None:
        if self._closed:
            return
        self.sidebar.current_id = self.conversation_id
        self.sidebar.refresh()
        self._update_buttons()

    def new_chat(self) -> None:
        """Ctrl+N: an empty transcript; the conversation is created with its first question."""
        self.chat.new()
        self.sidebar.clear_current()
        self.close_source()
        if self._streaming_here():
            self.stop_generation()
        self.transcript.set_entries([])
        self._show_welcome()
        self.input.setFocus()
        self._update_buttons()

    def open_conversation(self, conversation_id: int) -> None:
        if conversation_id != self.conversation_id:
            self.close_source()  # the pane shows the current chat's source or nothing
        try:
            turns = self.chat.open(conversation_id)
        except KeyError:
            self.show_notice("That conversation no longer exists.")
            self.refresh_conversations()
            return
        self.sidebar.current_id = conversation_id
        entries = [Entry(t.role, t.text, t.answer) for t in turns]
        self.transcript.set_entries(entries)
        if self.asker is not None and self.asker.asking_in(conversation_id):
            self.transcript.start_answer()
        if not entries:
            self._show_welcome()
        self._update_buttons()

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        try:
            self.chat.rename(conversation_id, title)
        except (ValueError, KeyError) as exc:
            self.show_notice(str(exc))
        self.refresh_conversations()

    def delete_conversation(self, conversation_id: int) -> None:
        if self._asking_in(conversation_id):
            self.stop_generation()
        current = self.conversation_id == conversation_id
        self.chat.delete(conversation_id)
        if current:
            self.new_chat()
        self.refresh_conversations()

    # == asking ================================================================================

    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self._generating or self._closed:
            return
        if self._services_error:
            self.show_notice(self._services_error)
            return
        question = self.chat.ask(text)
        self.input.clear()
        self.transcript.add_user(question.text)
        self.refresh_conversations()
        self._ask(question)

    def ask(self, question: str) -> None:
        """Programmatic send (tests, screenshots)."""
        self.input.setPlainText(question)
        self.send()

    def _ask(self, question: Question) -> None:
        self.show_notice("")
        if self.asker is None:
            # Asked once the knowledge base is open (attach_services); said meanwhile.
            self._waiting = question
            self.statusBar().showMessage(WAITING_TEXT)
        else:
            self.asker.ask(self.settings, question)
            self.transcript.start_answer()
            self.statusBar().showMessage("Answering…")
        self._update_buttons()

    @property
    def _generating(self) -> bool:
        """A question is being answered, or waits for the knowledge base."""
        return self._waiting is not None or (self.asker is not None and self.asker.generating)

    def _asking_in(self, conversation_id: int | None) -> bool:
        if self._waiting is not None:
            return self._waiting.conversation_id == conversation_id
        return self.asker is not None and self.asker.asking_in(conversation_id)

    def stop_generation(self) -> None:
        if self._waiting is not None:
            # Not asked yet: it is simply not asked (the question stays in the conversation).
            self._waiting = None
            self.statusBar().showMessage("Not asked", 3000)
            self._update_buttons()
        elif self.asker is not None and self.asker.stop():
            self.statusBar().showMessage("Stopping…", 2000)

    def regenerate(self) -> None:
        if self._generating or self._closed:
            return
        question = self.chat.regenerate()
        if question is None:
            return
        # The answer, or the error shown in its place (an error is never saved).
        self.transcript.drop_last_answer()
        self._ask(question)

    def copy_answer(self) -> None:
        answer = self.chat.last_answer()
        if answer is not None:
            QGuiApplication.clipboard().setText(answer.text)
            self.statusBar().showMessage("Answer copied", 2000)

    def _streaming_here(self) -> bool:
        return self._asking_in(self.conversation_id)

    def _on_token(self, piece: str, conversation_id: int | None) -> None:
        if not self._closed and conversation_id == self.conversation_id:
            self.transcript.append_token(piece)

    def _on_answered(self, answer: Answer, conversation_id: int | None) -> None:
        if self._closed:
            return
        if conversation_id == self.conversation_id:
            self.transcript.finish_answer(answer)
        seconds = f"{answer.seconds_total:.1f} s"
        self.statusBar().showMessage(
            ("Stopped" if answer.stopped else "Answered") + f" in {seconds}", 5000
        )
        self.refresh_conversations()
        self._update_buttons()

    def _on_failed(self, message: str, conversation_id: int | None) -> None:
        if self._closed:
            return
        if conversation_id == self.conversation_id:
            self.transcript.add_error(f"Could not answer: {message}")
        self.statusBar().showMessage("Answering failed", 5000)
        self._update_buttons()

    # == citations =============================================================================

    def show_citation(self, citation: Citation) -> None:
        was_hidden = not self.viewer.isVisible()
        if was_hidden:
            with self.transcript.keeping_place():
                sizes = self.splitter.sizes()
                total = sum(sizes)
                side = sizes[0]
                viewer = self._viewer_width or max(360, (total - side) * 2 // 5)
                viewer = min(viewer, max(200, total - side - 360))
                sidebar = self.sidebar
                panes = (self.sidebar, self.tabs, self.viewer)
                needed = sum(w.minimumSizeHint().width() for w in panes)
                needed += 2 * self.splitter.handleWidth()
                if needed > self.splitter.width() and sidebar.isVisible():
                    # No room for three panes: the conversation list steps aside (until the
                    # source closes) rather than the window growing past the screen.
                    sidebar.hide()
                    self._sidebar_hidden = True
                    side = 0
                self.viewer.show()
                self.splitter.setSizes([side, total - side - viewer, viewer])
        self.viewer.show_citation(citation, list(self.kb_folders))
        self.viewer.scroll_to_highlight()

    def focus_next_pane(self) -> None:
        """F6: chats, conversation, question, source (when open), round again; Tab moves within."""
        panes: list[QWidget] = [self.conversation_list, self.transcript, self.input]
        if self.viewer.isVisible():
            panes.append(self.viewer.stack.currentWidget() or self.viewer)
        focused = QApplication.focusWidget()
        here = -1
        if focused is not None:
            here = next(
                (i for i, p in enumerate(panes) if focused is p or p.isAncestorOf(focused)), -1
            )
        panes[(here + 1) % len(panes)].setFocus(Qt.FocusReason.TabFocusReason)

    def close_source(self) -> None:
        """Ctrl+W or the pane's close button: hide it; the chat gets its width back."""
        if not self.viewer.isVisible():
            self.viewer.clear()
            return
        with self.transcript.keeping_place():
            self._viewer_width = self.splitter.sizes()[2]
            self.viewer.hide()
            self.viewer.clear()
            if self._sidebar_hidden:
                self._sidebar_hidden = False
                self.sidebar.show()
        self.transcript.setFocus()

    def open_document(self, path: Path) -> bool:
        """Open with the system's app, only for files inside the documents folders."""
        checked = is_inside(path, self.kb_folders)
        if checked is None or not checked.is_file():
            self.show_notice(f"Not opened: {path} is not a file in your documents folders.")
            return False
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(checked))):
            return True
        # Said, not swallowed: with no program registered for the type nothing else would show.
        self.show_notice(
            f"No program on this computer could open {checked.name}. It is in {checked.parent}."
        )
        return False

    # == the model =============================================================================

    def load_model(self) -> None:
        if self.services is None:
            return  # loaded with the services (attach_services), the knowledge base first
        self.model.load(self.settings)

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a model", "", "GGUF models (*.gguf)")
        if path:
            self.add_model_file(Path(path))

    def add_model_file(self, path: Path) -> TaskHandle:
        """Check the GGUF (header, catalog hash) in the background, then save and load it."""
        return self.model.add_file(path, self.settings)

    def _model_saved(self, settings: Settings) -> None:
        self.settings = settings
        self.load_model()

    def _notice_cleared(self, kind: str) -> None:
        if kind:
            self.clear_notice(kind)
        else:
            self.show_notice("")

    # == documents =============================================================================

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.handle_dropped_paths(paths)

    def handle_dropped_paths(self, paths: Sequence[Path]) -> TaskHandle | None:
        """A .gguf becomes the model; supported documents/folders are indexed; the rest refused."""
        models = [p for p in paths if p.suffix.lower() == ".gguf" and p.is_file()]
        others = [p for p in paths if p not in models]
        if models:
            self.add_model_file(models[0])
        accepted = [p for p in others if p.is_dir() or (p.is_file() and is_supported(p))]
        refused = [p for p in others if p not in accepted]
        if refused:
            names = ", ".join(p.name for p in refused)
            kinds = " ".join(sorted(SUPPORTED_EXTENSIONS))
            self.show_notice(f"Not added (unsupported type): {names}. Supported: {kinds}")
        elif len(models) <= 1:
            self.show_notice("")
        if not accepted:
            return None
        return self.add_documents(accepted)

    def choose_documents(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(SUPPORTED_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add documents", "", f"Documents ({patterns})"
        )
        if files:
            self.add_documents([Path(f) for f in files])

    def add_documents(self, paths: Sequence[Path]) -> TaskHandle | None:
        """Copy into the first documents folder (or index in place), then index them. Before the
        knowledge base is open: once it is (None now)."""
        controller = self.library_controller
        if controller is None:
            paths = list(paths)
            count = f"{len(paths)} item{'s' if len(paths) != 1 else ''}"
            self._when_open(
                lambda: self.add_documents(paths),
                f"{count} will be added as soon as the knowledge base is open",
            )
            return None
        return controller.add(paths)

    def index_folders(self, folders: Sequence[Path] | None = None) -> TaskHandle | None:
        """Bring the index up to date with the documents folders (start-up, settings change)."""
        controller = self.library_controller
        if controller is None:
            self._when_open(
                lambda: self.index_folders(folders),
                "The folders will be indexed as soon as the knowledge base is open",
            )
            return None
        return controller.index_folders(folders)

    def _controller(self) -> LibraryController:
        """The library's writes come from the library tab, which waits for the services."""
        if self.library_controller is None:
            raise RuntimeError("the knowledge base is not open yet")
        return self.library_controller

    def reindex(self, paths: Sequence[str]) -> TaskHandle:
        return self._controller().reindex(paths)

    def remove_documents(self, paths: Sequence[str]) -> TaskHandle:
        """Out of the index, kept on disk, and excluded (listed in the library) until included
        again: otherwise the next start's reconciliation would index it again."""

        def done(count: int) -> None:
            self.statusBar().showMessage(f"Removed {count} document(s) from the index", 5000)

        return self._controller().remove(paths, done)

    def delete_documents(self, paths: Sequence[str]) -> TaskHandle:
        """The files to the trash (only files inside the documents folders), then out of the
        index. A file the trash refuses stays, and the notice says so."""

        def done(result: tuple[int, list[str]]) -> None:
            count, kept = result
            self.statusBar().showMessage(f"Deleted {count} file(s)", 5000)
            if kept:
                self.show_notice("Not deleted: " + "; ".join(kept))

        return self._controller().delete(paths, done)

    def include_again(self, keys: Sequence[str]) -> TaskHandle:
        """Excluded documents back into the index (those still on disk)."""
        return self._controller().include_again(keys)

    def confirm_keep_failed(self, names: Sequence[str]) -> bool:
        """Dropped files that could not be indexed: keep the copies (listed with their error)?"""
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Files that could not be indexed")
        box.setText(f"These dropped files could not be indexed: {listed}.")
        box.setInformativeText(
            "Remove the copies from your documents folder (your originals are not touched), or "
            "keep them there, listed in the library with the reason?"
        )
        remove = box.addButton("Remove the copies", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep them", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(remove)
        box.exec()
        return box.clickedButton() is not remove

    def _check_fresh_copies(self, documents: Sequence[DocumentInfo]) -> None:
        """Copies of dropped files that failed to index (by this window's task or live sync):
        the user chooses what happens to them instead of finding them later."""
        failed = self._controller().failed_copies(documents)
        if not failed or self._closed:
            return
        names = [Path(display_key(d.path)).name for d in failed]
        if self.confirm_keep_failed(names):
            self.show_notice(f"Kept, not indexed: {', '.join(names)} (see the library)")
            return

        def done(_count: int) -> None:
            self.show_notice(f"Removed the copies that could not be indexed: {', '.join(names)}")

        self._controller().remove_copies([d.path for d in failed], done)

    def is_indexing(self) -> bool:
        return self.library_controller is not None and self.library_controller.is_indexing()

    def _ingest_progress(self, label: str, value: object) -> None:
        if self._closed or not isinstance(value, IngestProgress):
            return
        done = value.files_done + value.files_failed
        text = f"{label} {min(done + 1, value.files_total)} of {value.files_total} …"
        if value.files_total == 0:
            text = f"{label}…"
        if value.current:
            text += f" {Path(value.current).name}"
        self.statusBar().showMessage(text)

    def _ingest_done(self, report: IngestReport) -> None:
        if self._closed:
            return
        if report == IngestReport():
            # Everything went to live sync, whose progress shows in the sync status.
            self.statusBar().showMessage("Added: live sync is indexing them", 5000)
            return
        parts = [f"{report.added} added", f"{report.updated} updated"]
        if report.removed:
            parts.append(f"{report.removed} removed")
        if report.failed:
            parts.append(f"{len(report.failed)} failed")
        message = "Index up to date: " + ", ".join(parts)
        # For a while only: a later change would make "up to date" untrue while still shown.
        self.statusBar().showMessage(message, 8000)
        if report.failed:
            listed = "; ".join(f"{Path(f.path).name}: {f.message}" for f in report.failed[:5])
            more = f" (+{len(report.failed) - 5} more)" if len(report.failed) > 5 else ""
            self.show_notice(f"Some files could not be indexed: {listed}{more}", "ingest")
        else:
            self.clear_notice("ingest")  # an earlier failure's notice is no longer true

    def _ingest_failed(self, message: str) -> None:
        if self._closed:
            return
        self.statusBar().showMessage("Indexing failed", 5000)
        self.show_notice(f"Indexing failed: {message}", "ingest")
        self.refresh_library()

    # == library ===============================================================================

    def show_library(self) -> None:
        self.tabs.setCurrentWidget(self.library)
        self.refresh_library()

    def _on_library_changed(self, _change: LibraryChange) -> None:
        self.refresh_library()

    def refresh_library(self) -> TaskHandle | None:
        if self._closed or self.services is None:
            return None  # attach_services refreshes it
        store = self.services.store
        exclusions = self.services.ingestor.exclusions
        # The runner has two threads, so two refreshes can finish out of order: one that read
        # the index before a removal, finishing last, would show the removed document until the
        # next change (live sync's delete, then nothing). The newest request's answer wins.
        self._library_requests += 1
        request = self._library_requests

        def work(_progress: ProgressFn, _cancel: threading.Event) -> list[DocumentInfo]:
            return list(store.documents().values())

        def done(documents: list[DocumentInfo]) -> None:
            if not self._closed and request == self._library_requests:
                self.library.set_excluded(exclusions.keys())
                self.library.set_documents(documents)
                self._check_fresh_copies(documents)

        return self.runner.submit(work, on_success=done, on_error=self._ingest_failed)

    # == settings ==============================================================================

    def settings_dialog(self) -> SettingsDialog:
        dialog = SettingsDialog(self.settings, self.settings_store, self)
        dialog.accepted.connect(lambda: self._settings_saved(dialog))
        return dialog

    def open_settings(self) -> None:
        dialog = self.settings_dialog()
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _settings_saved(self, dialog: SettingsDialog) -> None:
        if dialog.saved is not None:
            self.apply_settings(dialog.saved)

    def apply_settings(self, new: Settings) -> None:
        old, self.settings = self.settings, new
        apply_theme(new.theme)
        if any(getattr(old, f) != getattr(new, f) for f in _MODEL_FIELDS):
            self.load_model()
        self._update_banner()
        if self.sync.running and new.poll_folders != old.poll_folders:
            self.start_sync()
        folders_changed = bool(new.documents_folders) and (
            new.documents_folders != old.documents_folders
        )
        if folders_changed:
            self.kb_folders = folder_paths(new)
            self.library.set_folders(self.kb_folders)
        if self.library_controller is not None:
            self.library_controller.configure(self.kb_folders, copy_added=new.copy_dropped_files)
        if folders_changed:
            if self.sync.running or self._sync_wanted:
                self.start_sync()  # new folders: watch them (and reconcile them) instead
            else:
                self.index_folders()
        self.statusBar().showMessage("Settings saved", 3000)

    # == export ================================================================================

    def export_conversation(self, path: Path | None = None) -> Path | None:
        if self.conversation_id is None:
            self.show_notice("Nothing to export: ask a question first.")
            return None
        title = self.chat.title()
        # From the session's answers: sources, pages and warnings exactly as the chat shows.
        text = self.chat.export_markdown()
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Export conversation", export_file_name(title), "Markdown (*.md)"
            )
            if not chosen:
                return None
            path = Path(chosen)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.show_notice(f"Could not export: {exc.strerror or exc}")
            return None
        self.statusBar().showMessage(f"Exported to {path}", 5000)
        return path

    # == shutdown ==============================================================================

    def start_sync(self) -> None:
        """Follow the documents folders live (watchdog); reconciles with the disk first. Before
        the services are open: as soon as they are."""
        if self.services is None:
            self._sync_wanted = True
            return
        self.sync.start(self.services.ingestor, self.kb_folders, polling=self.settings.poll_folders)
        if not self.sync.running:
            self.sync_status.setText("Not watching (no documents folder)")

    def _on_sync_state(self, state: SyncState) -> None:
        self.sync_status.setText(describe_state(state, len(self.kb_folders)))

    def _save_layout(self) -> None:
        width = self.splitter.sizes()[2] if self.viewer.isVisible() else self._viewer_width
        # QSettings reports write failures through status(), never by raising: closing goes on.
        self.window_state.save(self, self.splitter, width)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        self._closed = True
        self._save_layout()
        # Gone from the screen at once; what follows waits at most about 1 s in all. Work that
        # outlives it (a file still being parsed) is abandoned: the app exits anyway (ui/app.py)
        # and the next start reconciles, as after a crash.
        self.hide()
        QGuiApplication.sync()  # the window system unmaps it now, not after the waits below
        self.sync.stop(timeout=0.0)  # first: no new batches start while the rest shuts down
        self._waiting = None
        self._when_ready.clear()
        if self.services is not None:
            self.services.ingestor.writer.cancel_all()
        self._search_timer.stop()
        self.transcript.stop_rendering()
        self.model_worker.stop()
        if self.library_controller is not None:
            self.library_controller.cancel_all()
        if self.ocr_status is not None:
            self.ocr_status.detach()
        self._disconnect_worker()
        self.runner.shutdown(timeout_ms=500)
        # A generation stops within one prompt slice or token; a model still loading can't be
        # interrupted and is not waited for longer than this.
        self.model_worker.shutdown(timeout_ms=500)
        self.history.close()
        event.accept()


def _local_paths(mime: QMimeData) -> list[Path]:
    if not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
