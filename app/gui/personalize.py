"""Settings → Personalize: fine-tune the model on the user's own captions, and watch it learn.

What was found (captioned photos per source, distinct captions, a few examples), the mode, the device
and an estimated time. **Fine-tune** runs `app.tasks.tune.run` as one task of the window's job runner:
the training itself is a child process (`python -m training`), so torch never loads into the window,
and Cancel kills it. The run's events arrive on the runner's thread and reach the GUI thread through a
Qt signal; they feed the progress bar and the live chart (`tune_chart`). At the end: recall before and
after, the user's captions as example queries with their top results, and **Use this model** (an
`ActivateTask`: a text-tower model shares its base's image space, so it is active at once) or
**Discard** (a `RemoveModelTask`). An active fine-tune goes back to its base in one click.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from .backend import Backend
from .jobbar import describe
from .jobs import ActivateTask, RemoveModelTask, Task, TuneTask

THUMB = 72          # px, the example results
EXAMPLES = 4        # example queries shown, and results of each
STEPS = 1000

# (mode, label, needs a GPU)
MODES = (("text", "Text only (fast, any computer)", False),
         ("quick", "Quick: the text projection only (seconds)", False),
         ("lora", "LoRA, both towers (NVIDIA GPU)", True),
         ("full", "Full, both towers (NVIDIA GPU)", True))
SOURCES = {"xmp": "XMP", "iptc": "IPTC", "exif": "EXIF", "xmp-sidecar": "XMP sidecars", "takeout": "Google Takeout",
           "captions.csv": "captions.csv", "metadata.csv": "metadata.csv", "metadata.jsonl": "metadata.jsonl",
           "album": "album names", "typed": "typed in Glimpse"}
# A first guess of the time, before the run measures its own: caption-photo pairs a second, epochs by default.
RATE = {("text", False): 40.0, ("quick", False): 3000.0, ("text", True): 1500.0, ("quick", True): 5000.0,
        ("lora", True): 2500.0, ("full", True): 2000.0}
EPOCHS = {"text": 15, "quick": 60, "lora": 10, "full": 5}  # training.trainer.DEFAULTS
OVERHEAD_S = 20.0   # loading the model, evaluating, exporting to ONNX with its parity check
DECODE_RATE = 60.0  # photos a second decoded once for a two-tower run


def estimate_s(photos: int, mode: str, gpu: bool, epochs: int | None = None) -> float:
    """Seconds a run may take, from the counts alone (the run refines it when it starts)."""
    rate = RATE.get((mode, gpu)) or RATE.get((mode, False)) or 100.0
    seconds = OVERHEAD_S + photos * (epochs or EPOCHS.get(mode, 10)) / rate
    if mode in ("lora", "full"):
        seconds += photos / DECODE_RATE
    return seconds


def human_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def device_text(device: str | None, gpu: str | None) -> str:
    """"cuda" / "cuda:0" / "cpu" as people say it."""
    if device and device.startswith("cuda"):
        return f"GPU: {gpu}" if gpu else "GPU (CUDA)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return f"CPU ({cores} core{'s' if cores != 1 else ''})"


def source_text(source: str) -> str:
    return SOURCES.get(source, source)



def _min_captioned() -> int:
    """With fewer captioned photos, training refuses (imported when asked: not at the window's start-up)."""
    from app.tasks.tune import MIN_CAPTIONED

    return MIN_CAPTIONED

class _Relay(QObject):
    """Carries the run's events from the runner's thread to the GUI thread (a queued signal)."""
    event = Signal(object)


class PersonalizeTab(QWidget):
    def __init__(self, backend: Backend, thumbs=None, parent: QWidget | None = None):
        """`thumbs`: the window's `ThumbnailLoader` for the example results (file names without it)."""
        super().__init__(parent)
        from .tune_chart import TuneChart  # QtCharts loads when Settings opens, not at start-up

        self.backend, self.thumbs = backend, thumbs
        self._thumbs_connected = False
        self.summary: dict | None = None
        self.task: TuneTask | None = None        # the run on show (running or ended)
        self.result: dict | None = None          # its "result" event
        self.model_id: str | None = None         # the model it made, until discarded
        self.active: str | None = None
        self.run_estimate: float | None = None   # the run's own estimate, from its "start" event
        self.task_epochs: int | None = None      # the epochs asked of the run on show (None: automatic)
        self.last_run: tuple | None = None       # (mode, epochs asked, seconds) of the last finished run
        self.notes: list[str] = []
        self._thumb_labels: dict[str, list[QLabel]] = {}
        self.relay = _Relay(self)
        self.relay.event.connect(self._event)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = self.scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(scroll)
        body = QWidget(scroll)
        scroll.setWidget(body)
        lay = QVBoxLayout(body)

        intro = QLabel("Teach the model your own words (“Mia's lake house”, “the Baxter cabin”) from the "
                       "captions your photos already have; it then finds those places and people in photos "
                       "you never captioned.", body)
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.found = QLabel("Looking for captions…", body)
        self.found.setWordWrap(True)
        self.found.setTextFormat(Qt.TextFormat.RichText)
        self.found.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.found)

        form = QFormLayout()
        self.mode = QComboBox(body)
        for key, label, _gpu in MODES:
            self.mode.addItem(label, key)
        self.mode.currentIndexChanged.connect(lambda _i: self._show_estimate())
        form.addRow("Mode", self.mode)
        self.epochs = QSpinBox(body)
        self.epochs.setRange(0, 200)
        self.epochs.setSpecialValueText("Automatic")
        self.epochs.setToolTip("Passes over the captioned photos; Automatic chooses for the mode")
        self.epochs.valueChanged.connect(lambda _v: self._show_estimate())
        form.addRow("Epochs", self.epochs)
        self.device = QLabel("…", body)
        form.addRow("Runs on", self.device)
        self.estimate = QLabel("–", body)
        form.addRow("Time", self.estimate)
        lay.addLayout(form)

        row = QHBoxLayout()
        self.fine_tune = QPushButton("Fine-tune", body)
        self.fine_tune.setEnabled(False)
        self.fine_tune.clicked.connect(self.start)
        self.cancel = QPushButton("Cancel", body)
        self.cancel.setToolTip("Stop the fine-tuning now; nothing is changed")
        self.cancel.setVisible(False)
        self.cancel.clicked.connect(self._cancel)
        self.back = QPushButton("Back to the base model", body)
        self.back.setVisible(False)
        self.back.clicked.connect(self._back)
        row.addWidget(self.fine_tune)
        row.addWidget(self.cancel)
        row.addStretch(1)
        row.addWidget(self.back)
        lay.addLayout(row)
        self.bar = QProgressBar(body)
        self.bar.setVisible(False)
        lay.addWidget(self.bar)
        self.note = QLabel("", body)
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.note)
        self.chart = TuneChart(body)
        self.chart.setVisible(False)
        lay.addWidget(self.chart)
        lay.addWidget(self._result_box(body))
        lay.addStretch(1)

        runner = backend.runner
        runner.changed.connect(self._changed)
        runner.progressed.connect(self._progress)
        runner.ended.connect(self._ended)
        backend.models_changed.connect(self._models)

    def _result_box(self, parent: QWidget) -> QGroupBox:
        box = self.result_box = QGroupBox("Result", parent)
        box.setVisible(False)
        lay = QVBoxLayout(box)
        grid = QGridLayout()
        self.metrics: dict[tuple[str, str], QLabel] = {}
        for c, head in enumerate(("", "R@1", "R@5", "R@10", "Mean rank")):
            if head:
                grid.addWidget(QLabel(f"<b>{head}</b>", box), 0, c, Qt.AlignmentFlag.AlignRight)
        for r, (key, label) in enumerate((("before", "Before (base model)"), ("after", "After (fine-tuned)")), 1):
            grid.addWidget(QLabel(label, box), r, 0)
            for c, metric in enumerate(("r1", "r5", "r10", "mean_rank"), 1):
                cell = self.metrics[key, metric] = QLabel("–", box)
                grid.addWidget(cell, r, c, Qt.AlignmentFlag.AlignRight)
        grid.setColumnStretch(0, 1)
        lay.addLayout(grid)
        self.summary_line = QLabel("", box)
        self.summary_line.setWordWrap(True)
        lay.addWidget(self.summary_line)
        self.verdict = QLabel("", box)
        self.verdict.setWordWrap(True)
        lay.addWidget(self.verdict)
        row = QHBoxLayout()
        self.use = QPushButton("Use this model", box)
        self.use.clicked.connect(self._use)
        self.discard = QPushButton("Discard", box)
        self.discard.setToolTip("Delete the fine-tuned model; the one in use stays")
        self.discard.clicked.connect(self._discard)
        row.addWidget(self.use)
        row.addWidget(self.discard)
        row.addStretch(1)
        lay.addLayout(row)
        self.examples_title = QLabel("<b>Your captions as searches</b> (top results of the fine-tuned model)", box)
        lay.addWidget(self.examples_title)
        self.examples = QVBoxLayout()
        lay.addLayout(self.examples)
        self.example_rows: list[tuple[str, list[QLabel]]] = []
        return box

    # -- what was found ------------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Count the captions again (off the GUI thread)."""
        self.backend.caption_summary(self._summary)
        self.backend.refresh_models()

    def _summary(self, s: dict) -> None:
        self.summary = s
        photos, distinct = s.get("photos", 0), s.get("distinct", 0)
        sources = sorted((s.get("by_source") or {}).items(), key=lambda kv: -kv[1])
        parts = [f"<b>{photos:,} captioned photo{'s' if photos != 1 else ''}</b>, "
                 f"{distinct:,} distinct caption{'s' if distinct != 1 else ''}"]
        if sources:
            parts.append("From " + ", ".join(f"{source_text(k)}: {n:,}" for k, n in sources) + ".")
        examples = s.get("examples") or []
        if examples:
            parts.append("For example: " + "; ".join(
                f"“{_esc(e['text'])}” <span style='color:palette(placeholder-text)'>"
                f"({_esc(os.path.basename(e['path']))})</span>" for e in examples[:5]))
        if photos < _min_captioned():
            parts.append(f"<b>Fine-tuning needs at least {_min_captioned()} captioned photos.</b> Add captions: "
                         "type one in a photo's preview (its Caption field), put a <i>captions.csv</i> "
                         "(columns <i>file,caption</i>) in a watched folder, or keep the XMP or Google Takeout "
                         "sidecars beside your photos; Glimpse reads them when it indexes.")
        self.found.setText("<br>".join(parts))
        gpu = s.get("gpu")
        model = self.mode.model()
        for i, (_key, label, needs_gpu) in enumerate(MODES):
            item = model.item(i)
            item.setEnabled(bool(gpu) or not needs_gpu)
            item.setToolTip("" if gpu or not needs_gpu else "Needs an NVIDIA GPU with CUDA; none was found")
        if not gpu and MODES[self.mode.currentIndex()][2]:
            self.mode.setCurrentIndex(0)
        if self.task is None or self.task.finished.is_set():
            self.device.setText(device_text("cuda" if gpu else "cpu", gpu))
        self._show_estimate()
        self._enable()

    def _mode_gpu(self) -> bool:
        return MODES[self.mode.currentIndex()][2]

    def _show_estimate(self) -> None:
        if self.summary is None:
            return
        if self.running:
            return  # the run's own estimate is on show
        photos = self.summary.get("photos", 0)
        gpu = bool(self.summary.get("gpu"))
        mode = self.mode.currentData()
        if photos < _min_captioned():
            self.estimate.setText("–")
            return
        epochs = self.epochs.value() or None
        if self.last_run is not None and self.last_run[:2] == (mode, epochs):
            self.estimate.setText(f"{human_time(self.last_run[2])} (as the last run took)")
            return
        seconds = estimate_s(photos, mode, gpu, epochs)
        self.estimate.setText(f"{human_time(seconds)} (a first guess; the run refines it)")

    def _enable(self) -> None:
        enough = self.summary is not None and self.summary.get("photos", 0) >= _min_captioned()
        has_model = self.summary is not None and bool(self.summary.get("active"))
        busy = self.running
        self.fine_tune.setEnabled(enough and has_model and not busy)
        self.fine_tune.setToolTip("" if enough else f"Needs at least {_min_captioned()} captioned photos")
        self.mode.setEnabled(not busy)
        self.epochs.setEnabled(not busy)
        self.cancel.setVisible(busy)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.finished.is_set()

    # -- running -------------------------------------------------------------------------------------
    def start(self) -> TuneTask | None:
        from app.tasks.tune import TuneOptions

        options = TuneOptions(mode=self.mode.currentData(), epochs=self.epochs.value() or None)
        task = self.backend.tune(options, self.relay.event.emit)
        if task is None:
            self.note.setText("A fine-tuning run is already going.")
            return None
        self.task, self.result, self.run_estimate, self.notes = task, None, None, []
        self.task_epochs = options.epochs
        self.result_box.setVisible(False)
        self.chart.reset(options.epochs or EPOCHS.get(options.mode, 10))
        self.chart.setVisible(True)
        self.bar.setRange(0, 0)
        self.bar.setVisible(True)
        self.note.setText("Starting…")
        self._enable()
        self._changed()
        return task

    def _cancel(self) -> None:
        if self.running:
            self.backend.runner.cancel(self.task)

    def _changed(self) -> None:
        task = self.task
        if task is not None and task.state == "queued" and task.waiting_for:
            self.note.setText(f"Waiting for {task.waiting_for}…")

    def _event(self, e: dict) -> None:  # GUI thread: one event of the child's
        kind = e.get("event")
        if kind == "start":
            gpu = (self.summary or {}).get("gpu")
            self.device.setText(device_text(e.get("device"), gpu))
            if e.get("estimate_s") is not None:
                self.run_estimate = float(e["estimate_s"])
                self.estimate.setText(f"{human_time(self.run_estimate)} (measured by the run)")
            self.chart.reset(e.get("epochs") or self.chart.epochs)
            self.notes.append(f"Learning from {e.get('train', 0):,} captioned photos; {e.get('held_out', 0):,} "
                              f"more are held out to measure recall ({e.get('distinct', 0):,} distinct captions).")
            self.note.setText(self.notes[-1])
        elif kind == "progress":
            if e.get("stage", "train") == "train" and e.get("loss") is not None:
                self.chart.add_step(int(e.get("done") or 0), int(e.get("total") or 0), e["loss"])
        elif kind == "epoch":
            self.chart.add_epoch(int(e.get("epoch") or 0), e.get("loss"), e.get("r5"))
        elif kind == "note":
            self.notes.append(str(e.get("message", "")))
            self.note.setText(self.notes[-1])
        elif kind == "result":
            self.result = e
            self.chart.add_start((e.get("before") or {}).get("r5"))

    def _progress(self, task: Task, p) -> None:
        if task is not self.task:
            return
        if p.total > 0:
            self.bar.setRange(0, STEPS)
            self.bar.setValue(round(STEPS * min(1.0, p.done / p.total)))
        else:
            self.bar.setRange(0, 0)
        self.note.setText(describe(task, p))

    def _ended(self, task: Task) -> None:
        if isinstance(task, TuneTask) and task is self.task:
            self.bar.setVisible(False)
            self._enable()
            if task.state == "done":
                self.show_result(task.result.result)
            elif task.state == "cancelled":
                self.note.setText("Cancelled; nothing was changed.")
            else:
                self.note.setText(f"<span style='color:palette(highlight)'>⚠</span> {task.message}")
            self.refresh()
        elif isinstance(task, ActivateTask) and task.model_id == self.model_id and self.result_box.isVisible():
            if task.state == "done" and task.result:
                self.note.setText(f"Glimpse now searches with {self.model_id}.")
            elif task.state == "failed":
                self.note.setText(task.message)
        elif isinstance(task, RemoveModelTask) and task.model_id == self.model_id:
            if task.state == "done":
                self.note.setText(f"Discarded {self.model_id}; {self.active or 'the model in use'} stays.")
                self.model_id = None
                self.result_box.setVisible(False)
            elif task.state == "failed":
                self.note.setText(task.message)

    # -- the result ----------------------------------------------------------------------------------
    def show_result(self, r: dict) -> None:
        from app.tasks.tune import better

        self.result, self.model_id = r, r.get("model")
        for key in ("before", "after"):
            values = r.get(key) or {}
            for metric in ("r1", "r5", "r10", "mean_rank"):
                v = values.get(metric)
                text = "–" if v is None else (f"{v:.1f}" if metric == "mean_rank" else f"{v:.2f}")
                self.metrics[key, metric].setText(text)
        bits = []
        if r.get("agreement") is not None:
            bits.append(f"Agreement with the base model on everyday searches: {r['agreement']:.2f} (1 = unchanged)")
        if r.get("alpha") is not None:
            bits.append(f"mixed with the base at α = {r['alpha']:.2f}")
        if r.get("seconds") is not None:
            took = f"took {_duration(r['seconds'])} on {device_text(r.get('device'), (self.summary or {}).get('gpu'))}"
            if r.get("pairs_per_s"):
                took += f", {r['pairs_per_s']:.0f} photos/s"
            bits.append(took)
            self.last_run = (r.get("mode"), self.task_epochs, float(r["seconds"]))
        self.summary_line.setText("; ".join(bits) + "." if bits else "")
        ok, reason = better(r)
        self.verdict.setText(f"<b>{self.model_id}</b> is installed. " + (
            f"It is better: {reason}." if ok else f"It is not better: {reason}. You can still try it."))
        self._show_examples(r.get("examples") or [])
        self.use.setEnabled(True)
        self.discard.setEnabled(True)
        self.result_box.setVisible(True)
        self.note.setText("Done. Use the new model, or discard it.")
        self._show_estimate()
        self.scroll.ensureWidgetVisible(self.use)

    def _show_examples(self, examples: list[dict]) -> None:
        while self.examples.count():
            item = self.examples.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._thumb_labels.clear()
        self.example_rows = []
        self.examples_title.setVisible(bool(examples))
        for ex in examples[:EXAMPLES]:
            row = QWidget(self.result_box)
            lay = QHBoxLayout(row)
            lay.setContentsMargins(0, 0, 0, 0)
            caption = QLabel(f"“{ex.get('caption', '')}”", row)
            caption.setWordWrap(True)
            caption.setMinimumWidth(160)
            lay.addWidget(caption, 1)
            cells = []
            for path in (ex.get("paths") or [])[:EXAMPLES]:
                cell = QLabel(row)
                cell.setFixedSize(QSize(THUMB, THUMB))
                cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
                cell.setToolTip(path)
                cell.setFrameShape(QFrame.Shape.StyledPanel)
                self._thumb_labels.setdefault(path, []).append(cell)
                self._set_thumb(cell, path)
                lay.addWidget(cell)
                cells.append(cell)
            self.examples.addWidget(row)
            self.example_rows.append((ex.get("caption", ""), cells))
        if self.thumbs is not None and not self._thumbs_connected:
            self.thumbs.loaded.connect(self._thumb_loaded)
            self._thumbs_connected = True

    def _set_thumb(self, cell: QLabel, path: str) -> None:
        pm = self.thumbs.pixmap(path) if self.thumbs is not None else None
        if pm is not None:
            cell.setPixmap(pm.scaled(QSize(THUMB - 4, THUMB - 4), Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation))
        else:
            name = os.path.basename(path)
            cell.setText(name if len(name) <= 10 else name[:9] + "…")

    def _thumb_loaded(self, path: str) -> None:
        for cell in self._thumb_labels.get(path, []):
            self._set_thumb(cell, path)

    def _use(self) -> None:
        if self.model_id:
            self.backend.use_model(self.model_id)
            self.use.setEnabled(False)
            self.note.setText(f"Switching to {self.model_id}…")

    def _discard(self) -> None:
        if self.model_id:
            self.backend.remove_model(self.model_id)
            self.use.setEnabled(False)
            self.discard.setEnabled(False)
            self.note.setText(f"Removing {self.model_id}…")

    # -- going back ------------------------------------------------------------------------------------
    def _models(self, info: dict) -> None:
        self.active = info.get("active")
        installed = {m["id"]: m for m in info.get("installed", [])}
        base = (installed.get(self.active) or {}).get("base")
        self.back.setVisible(bool(base))
        if base:
            self.back.setText(f"Back to {base}")
            there = base in installed
            self.back.setEnabled(there)
            self.back.setToolTip(f"{self.active} is a fine-tune of {base}; search with {base} again" if there
                                 else f"{base} is no longer installed")
        if self.model_id is not None and self.result_box.isVisible():
            in_use = self.model_id == self.active
            self.use.setEnabled(not in_use and self.model_id in installed)
            self.use.setText("In use" if in_use else "Use this model")

    def _back(self) -> None:
        base = self.back.text().removeprefix("Back to ")
        if base:
            self.backend.use_model(base)
            self.note.setText(f"Switching back to {base}…")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"


def _esc(text: str) -> str:
    import html

    return html.escape(text)
