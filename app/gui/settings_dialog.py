"""Settings: the library (folders, exclusions, watching), the model (choose, download, import, where it
runs), Personalize (fine-tuning on the user's captions, `personalize`) and Appearance (the theme).

Tabs are added by name, so each panel is one more tab.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QEvent, QStandardPaths, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QStyle, QTabWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)
from superqt.utils import create_worker

from .backend import Backend
from .jobbar import describe
from .jobs import ObtainTask, QuantizeTask, Task
from .library_panel import FoldersView, start_folder
from .personalize import PersonalizeTab
from app.library.status import LibraryStatus
from app.library.units import human_size

from .widgets import list_tree

THEMES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
PROVIDERS = {"auto": "Automatic (GPU when available)", "cuda": "GPU (CUDA)", "cpu": "CPU"}
MODEL_COLUMNS = ["Model", "Architecture", "Size", "Status"]
NOT_CHECKED = "not checked yet"


def cuda_missing() -> str | None:
    """Why models cannot run on CUDA here (None when they can try). Imports onnxruntime: call it on a worker."""
    from model.runtime import cuda_missing as missing

    return missing()


class ModelGetter(QWidget):
    """Download a known model with a progress bar, or import a model folder; errors are shown, not raised.
    Either is a task of the window's job runner: it waits for indexing to pause, and shows in the status bar too."""
    installed = Signal(str)

    def __init__(self, backend: Backend, parent: QWidget | None = None):
        super().__init__(parent)
        from model import registry  # plain data, no torch

        self.backend = backend
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.choice = QComboBox(self)
        for b in registry.KNOWN:
            self.choice.addItem(f"{b.name}{'  (recommended)' if b.default else ''}", b.name)
            self.choice.setItemData(self.choice.count() - 1, f"{b.summary}\nLicence: {b.licence}",
                                    Qt.ItemDataRole.ToolTipRole)
        self.download = QPushButton("Download", self)
        self.download.clicked.connect(self._pull)
        self.import_button = QPushButton("Import model folder…", self)
        self.import_button.setToolTip("An open_clip folder (config + weights), for computers without internet")
        self.import_button.clicked.connect(self._import)
        row.addWidget(self.choice, 1)
        row.addWidget(self.download)
        row.addWidget(self.import_button)
        lay.addLayout(row)
        self.bar = QProgressBar(self)
        self.bar.setVisible(False)
        lay.addWidget(self.bar)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.note)
        backend.runner.changed.connect(self._changed)
        backend.runner.progressed.connect(self._progress)
        backend.runner.ended.connect(self._ended)
        self._set_busy(backend.runner.find(ObtainTask) is not None)

    def _set_busy(self, busy: bool) -> None:
        self.download.setEnabled(not busy)
        self.import_button.setEnabled(not busy)
        self.choice.setEnabled(not busy)
        self.bar.setVisible(busy)

    def _pull(self) -> None:
        self._started(self.backend.pull(self.choice.currentData()))

    def _import(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import an open_clip model folder",
                                                start_folder(QStandardPaths.StandardLocation.DownloadLocation))
        if path:
            self.import_folder(path)

    def import_folder(self, path: str) -> None:
        self._started(self.backend.import_model(path))

    def _started(self, task: Task | None) -> None:
        if task is not None:
            self._set_busy(True)
            self._changed()

    def _changed(self) -> None:
        task = self.backend.runner.find(ObtainTask)
        if task is not None and task.progress is None:
            self._set_busy(True)
            self.bar.setRange(0, 0)
            self.note.setText(f"{task.title}: waiting for {task.waiting_for}…"
                              if task.state == "queued" and task.waiting_for else f"{task.title}…")

    def _progress(self, task: Task, p) -> None:
        if isinstance(task, ObtainTask):
            if p.total > 0:
                self.bar.setRange(0, 1000)
                self.bar.setValue(int(1000 * min(1.0, p.done / p.total)))
            else:
                self.bar.setRange(0, 0)
            self.note.setText(describe(task, p))

    def _ended(self, task: Task) -> None:
        if not isinstance(task, ObtainTask):
            return
        self._set_busy(False)
        if task.state == "done":
            obtained = task.result
            self.note.setText(f"{obtained.model.id} is installed." + (" Glimpse searches with it." if obtained.active
                              else " Choose it in Settings → Model to search with it."))
            self.installed.emit(obtained.model.id)
        elif task.state == "cancelled":
            self.note.setText("Cancelled; nothing was installed.")
        else:
            self.note.setText(f"<span style='color:palette(highlight)'>⚠</span> {task.message}")


class SettingsDialog(QDialog):
    theme_changed = Signal(str)

    def __init__(self, backend: Backend, theme: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Settings")  # Qt adds " — Glimpse"
        self.resize(760, 640)
        lay = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        lay.addWidget(self.tabs)
        self.tabs.addTab(self._library_tab(), "Library")
        self.tabs.addTab(self._model_tab(), "Model")
        self.personalize = PersonalizeTab(backend, getattr(parent, "thumbs", None), self)
        self.tabs.addTab(self.personalize, "Personalize")
        self.tabs.addTab(self._appearance_tab(theme), "Appearance")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        if parent is not None:  # Ctrl+Q quits from here too, as from the main window
            QShortcut(QKeySequence("Ctrl+Q"), self, activated=parent.close)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        lay.addWidget(buttons)
        backend.status_changed.connect(self._status)
        backend.models_changed.connect(self._models)
        backend.refresh_status()
        backend.refresh_models(with_providers=True)
        create_worker(cuda_missing, _connect={"returned": self._cuda_checked}, _ignore_errors=True)

    def changeEvent(self, event: QEvent) -> None:
        """The button box takes its icon once: a new theme gives the Close button the new style's."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.StyleChange and not self.close_button.icon().isNull():
            self.close_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogCloseButton))

    # -- library ---------------------------------------------------------------------------------------
    def _library_tab(self) -> QWidget:
        w = QWidget(self)
        form = QFormLayout(w)
        self.folders = FoldersView(w)
        self.folders.add_requested.connect(self.backend.add_folder)
        self.folders.remove_requested.connect(self.backend.remove_folder)
        self.folders.rescan_requested.connect(self.backend.rescan)
        form.addRow("Folders", self.folders)
        self.exclude = QPlainTextEdit(w)
        self.exclude.setPlaceholderText("Files and folders to leave out, one pattern per line, e.g.\n"
                                        "*.tmp\nScreenshots\nexports/*")
        self.exclude.setMaximumHeight(90)
        self.apply_exclusions = QPushButton("Apply exclusions", w)
        self.apply_exclusions.clicked.connect(self._apply_exclusions)
        ex = QVBoxLayout()
        ex.addWidget(self.exclude)
        ex.addWidget(self.apply_exclusions, 0, Qt.AlignmentFlag.AlignRight)
        form.addRow("Exclusions", ex)
        self.watch = QCheckBox("Watch the folders and index changes as they happen", w)
        self.watch.toggled.connect(lambda on: self.backend.set_setting("watch", on))
        form.addRow("Watching", self.watch)
        return w

    def _appearance_tab(self, theme: str) -> QWidget:
        w = QWidget(self)
        form = QFormLayout(w)
        self.theme = QComboBox(w)
        for key, label in THEMES.items():
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(0, self.theme.findData(theme)))
        self.theme.currentIndexChanged.connect(lambda _i: self.theme_changed.emit(self.theme.currentData()))
        form.addRow("Theme", self.theme)
        self.remember = QCheckBox("Open with the last search (it is kept in Glimpse's settings file)", w)
        form.addRow("Search", self.remember)
        return w

    def _apply_exclusions(self) -> None:
        patterns = [line.strip() for line in self.exclude.toPlainText().splitlines() if line.strip()]
        self.backend.set_exclusions(patterns)

    def _status(self, status: LibraryStatus) -> None:
        self.folders.set_folders(status.folders)
        self.watch.blockSignals(True)
        self.watch.setChecked(status.watch)
        self.watch.blockSignals(False)
        if not self.exclude.hasFocus():
            self.exclude.setPlainText("\n".join(status.exclude))

    # -- model -----------------------------------------------------------------------------------------
    def _model_tab(self) -> QWidget:
        w = QWidget(self)
        lay = QVBoxLayout(w)
        lay.addWidget(QLabel("<b>Installed models</b>", w))
        self.models = list_tree(w, MODEL_COLUMNS, "Installed models")
        self.models.itemSelectionChanged.connect(self._model_selection)
        lay.addWidget(self.models)
        row = QHBoxLayout()
        self.use = QPushButton("Use this model", w)
        self.use.clicked.connect(self._use)
        self.remove = QPushButton("Remove", w)
        self.remove.clicked.connect(self._remove)
        row.addWidget(self.use)
        row.addWidget(self.remove)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(QLabel("<b>Get a model</b>", w))
        self.getter = ModelGetter(self.backend, w)
        lay.addWidget(self.getter)
        form = QFormLayout()
        self.provider = QComboBox(w)
        for key, label in PROVIDERS.items():
            self.provider.addItem(label, key)
        self.provider.currentIndexChanged.connect(self._provider_chosen)
        form.addRow("Run on", self.provider)
        self.in_use = QLabel("…", w)
        self.in_use.setWordWrap(True)
        form.addRow("In use", self.in_use)
        self.int8 = QCheckBox("Index with the int8 image tower (about 2x faster on the CPU)", w)
        self.int8.toggled.connect(self._int8_toggled)
        form.addRow("Image tower", self.int8)
        self.cuda_problem: str | None = NOT_CHECKED
        self.providers: list[str] | None = None
        lay.addLayout(form)
        lay.addStretch(1)
        self._model_selection()
        return w

    def _models(self, info: dict) -> None:
        self.models.clear()
        for m in info["installed"]:
            active = m["id"] == info["active"]
            if "damaged" in m:
                item = QTreeWidgetItem([m["id"], "damaged", "", ""])
                item.setToolTip(0, m["damaged"])
            else:
                item = QTreeWidgetItem([m["id"], m["architecture"], human_size(m["bytes"]), "active" if active else ""])
            item.setData(0, Qt.ItemDataRole.UserRole, m["id"])
            self.models.addTopLevelItem(item)
        self.provider.blockSignals(True)
        self.provider.setCurrentIndex(max(0, self.provider.findData(info["provider"])))
        self.provider.blockSignals(False)
        if info["providers"] or not info["active"] or self.providers is None:
            self.providers = list(info["providers"])  # a refresh without providers keeps the last ones
        self._show_provider()
        self._show_int8()
        self._model_selection()

    def _show_int8(self) -> None:
        """The int8 box: on as the setting says; enabled only when the active model has an int8 tower."""
        lib = self.backend.library
        model = lib.models.active_or_none() if lib is not None else None
        info = model.manifest.get("int8") if model is not None and model.int8_path else None
        self.int8.blockSignals(True)
        self.int8.setChecked(bool(lib is not None and lib.settings["int8_image_tower"]))
        self.int8.blockSignals(False)
        making = self.backend.runner.find(QuantizeTask) is not None
        self.int8.setEnabled(model is not None and not making)
        if making:
            self.int8.setToolTip("Making the int8 image tower…")
        elif info is not None:
            self.int8.setToolTip(f"Its vectors agree with the full-precision tower's (cosine ≥ {info['cosine_min']:.4f}), "
                                 "so photos indexed either way are searched together. Not checked on trained "
                                 "weights here: off by default. Used on the CPU only.")
        else:
            self.int8.setToolTip("The active model has no int8 image tower yet: turning this on makes one (up to "
                                 "a minute), checks its vectors against the full-precision tower's, then "
                                 "indexes with it.")

    def _int8_toggled(self, on: bool) -> None:
        lib = self.backend.library
        model = lib.models.active_or_none() if lib is not None else None
        if on and model is not None and not model.int8_path:  # none yet: make it (the task turns it on)
            self.int8.blockSignals(True)
            self.int8.setChecked(False)
            self.int8.blockSignals(False)
            if self.backend.quantize(model.id) is not None:
                self._show_int8()
            return
        self.backend.set_setting("int8_image_tower", on)

    def _provider_chosen(self, _index: int) -> None:
        self.backend.set_setting("provider", self.provider.currentData())
        self._show_provider()

    def _cuda_checked(self, problem: str | None) -> None:
        self.cuda_problem = problem
        item = self.provider.model().item(self.provider.findData("cuda"))
        item.setEnabled(problem is None)
        item.setToolTip(f"Not available: {problem}" if problem else "")
        self.provider.setToolTip(f"GPU (CUDA) is not available: {problem}" if problem else "")
        self._show_provider()

    def _show_provider(self) -> None:
        """What runs the model, and why not the GPU where the user asked for it."""
        if not self.providers:
            self.in_use.setText("…" if self.providers is None else "no model active yet")
            return
        text = ", ".join(p.replace("ExecutionProvider", "") for p in self.providers)
        chosen = self.provider.currentData()
        if chosen != "cpu" and "CUDAExecutionProvider" not in self.providers:
            if os.environ.get("GLIMPSE_PROVIDER", "").lower() == "cpu":
                why = "GLIMPSE_PROVIDER=cpu is set."
            elif self.cuda_problem not in (None, NOT_CHECKED):
                why = self.cuda_problem
            elif chosen == "cuda" and self.cuda_problem is None:
                why = "CUDA did not start (its CUDA or cuDNN libraries may be missing): see `glimpse doctor`."
            else:
                why = None
            if why:
                text += f" — {why}" if chosen == "cuda" else f" (no GPU: {why})"
        self.in_use.setText(text)

    def _selected_model(self) -> str | None:
        items = self.models.selectedItems()
        return items[0].data(0, Qt.ItemDataRole.UserRole) if items else None

    def _model_selection(self) -> None:
        chosen = self._selected_model()
        self.use.setEnabled(chosen is not None)
        self.remove.setEnabled(chosen is not None)

    def _use(self) -> None:
        chosen = self._selected_model()
        if chosen:
            self.backend.use_model(chosen)

    def _remove(self) -> None:
        chosen = self._selected_model()
        lib = self.backend.library
        active = lib is not None and chosen == lib.models.active_id
        others = self.models.topLevelItemCount() > 1
        text = f"Delete {chosen} from disk?" + ("" if not active else
                                                 " Search uses it now: another installed model takes over (its "
                                                 "vectors are made again if needed)." if others else
                                                 " It is the only model: search stops until you add one.")
        if chosen and QMessageBox.question(self, "Remove model", text) == QMessageBox.StandardButton.Yes:
            self.backend.remove_model(chosen)
