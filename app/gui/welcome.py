"""First run: choose photo folders and get a model. Offline, the download says so and import is offered.

The card keeps one size whatever it says (folders added, a download's progress or error, the model
ready), so it never jumps: its notes have fixed heights and hidden parts keep their room."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.library.status import LibraryStatus

from .backend import Backend
from .library_panel import choose_folder
from .settings_dialog import ModelGetter

FOLDER_LINES = 3  # folders listed on the card; more are counted
NOTE_LINES = 4  # room for the download's note (the offline message takes four lines)


def keep_room(widget: QWidget) -> None:
    """Hiding `widget` leaves its room in the layout."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


class Welcome(QWidget):
    done = Signal()

    def __init__(self, backend: Backend, parent: QWidget | None = None):
        super().__init__(parent)
        self.backend = backend
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row_ = QHBoxLayout()  # stretches, not an alignment flag, so wrapped text gets its height
        outer.addLayout(row_)
        card = self.card = QFrame(self)
        card.setFixedWidth(620)
        row_.addStretch(1)
        row_.addWidget(card)
        row_.addStretch(1)
        lay = QVBoxLayout(card)
        title = QLabel("<h1>Welcome to Glimpse</h1>", card)
        lay.addWidget(title)
        lay.addWidget(QLabel("Find any photo on this computer by describing it, or by dropping a similar one. "
                             "Everything stays on this computer.", card, wordWrap=True))
        lay.addSpacing(12)
        lay.addWidget(QLabel("<h3>1. Choose your photo folders</h3>", card))
        row = QHBoxLayout()
        self.folders_note = QLabel("No folder yet.", card)
        self.folders_note.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.folders_note.setFixedHeight(FOLDER_LINES * self.fontMetrics().lineSpacing() + 4)
        self.add_button = QPushButton("Add folder…", card)
        self.add_button.clicked.connect(self._add)
        row.addWidget(self.folders_note, 1)
        row.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(row)
        lay.addSpacing(12)
        lay.addWidget(QLabel("<h3>2. Get a model</h3>", card))
        self.model_note = QLabel("Glimpse needs a CLIP model (about 600 MB, downloaded once).", card, wordWrap=True)
        lay.addWidget(self.model_note)
        self.getter = ModelGetter(backend, card)
        self.getter.note.setMinimumHeight(NOTE_LINES * self.fontMetrics().lineSpacing() + 4)
        self.getter.note.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        keep_room(self.getter.bar)
        keep_room(self.getter)
        lay.addWidget(self.getter)
        lay.addSpacing(12)
        self.start = QPushButton("Start searching", card)
        self.start.setDefault(True)
        self.start.setEnabled(False)
        self.start.clicked.connect(self.done.emit)
        lay.addWidget(self.start, 0, Qt.AlignmentFlag.AlignRight)
        outer.addStretch(2)
        self.has_folders = self.has_model = False

    def set_status(self, status: LibraryStatus) -> None:
        folders = list(status.folders)
        self.has_folders = bool(folders)
        self.has_model = status.has_model
        self.folders_note.setText(self._folder_lines(folders))
        if self.has_model:
            self.model_note.setText(f"Model ready: {status.active_model}")
        self.getter.setVisible(not self.has_model)
        self.start.setEnabled(self.has_folders and self.has_model)

    def _folder_lines(self, folders: list[str]) -> str:
        if not folders:
            return "No folder yet."
        shown = folders if len(folders) <= FOLDER_LINES else folders[:FOLDER_LINES - 1]
        width = self.card.width() - 40 - self.add_button.sizeHint().width()
        lines = [self.fontMetrics().elidedText(f, Qt.TextElideMode.ElideMiddle, width) for f in shown]
        if len(shown) < len(folders):
            lines.append(f"and {len(folders) - len(shown)} more")
        return "\n".join(lines)

    def _add(self) -> None:
        path = choose_folder(self)
        if path:
            self.backend.add_folder(path)
