"""The status bar's view of the job runner: what runs, how far (a bar, the rate, the time left), what
waits, and Pause/Resume (where it applies) and Cancel. Every task shows the same way."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from app.library.units import human_size
from model.jobs import Progress

from .jobs import IndexTask, JobRunner, Task
from .widgets import tool_button

STEPS = 1000  # the bar counts in thousandths: byte totals do not fit Qt's int


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


def describe(task: Task, p: Progress | None = None, paused: bool = False) -> str:
    """One line: "Indexing 120 of 300 · 25.0 images/s · about 2 min left · CPU, 2 threads",
    "Importing x: checking · 65% · about 20 s left". The device is the one the job reports (indexing does)."""
    head = "Paused: " if paused else ""
    if task.blocked_by:  # "Another Glimpse (process 12) is indexing; waiting…" → "Waiting: another Glimpse … indexing…"
        who = task.blocked_by.split(";")[0].rstrip(".")
        return f"{head}Waiting: {who[:1].lower()}{who[1:]}…"
    if p is None:
        return f"{head}{task.title}…"
    stage = p.stage[:1].upper() + p.stage[1:]
    text = stage if task.noun == "photos" else f"{task.title}: {p.stage}"
    if p.total:
        if p.stage == "download":
            text += f" {human_size(p.done)} of {human_size(p.total)}"
        elif task.noun:
            text += f" {p.done:,} of {p.total:,}"
        else:  # steps of unequal length (an import): how far along
            text += f" · {100 * p.done // p.total}%"
    if paused:  # no rate, no time left: nothing moves
        return head + text
    if p.rate > 0:
        text += f" · {p.rate:.1f} {RATE_NOUNS.get(task.noun, task.noun) or 'items'}/s"
    eta = format_eta(p.eta_s)
    return text + (f" · {eta}" if eta else "") + (f" · {p.device}" if p.device else "")


RATE_NOUNS = {"photos": "images"}  # what the model's speed is counted in, as benchmarks and the CLI say it


UP_TO_DATE = "Library up to date."


class JobBar(QWidget):
    said = Signal(str)  # a line for the status text, once a task has ended

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.text = QLabel("", self)
        self.bar = QProgressBar(self)
        self.bar.setMaximumWidth(180)
        self.bar.setTextVisible(False)
        self.pause = tool_button(self, "Pause", "Pause (search keeps working)", flat=False, checkable=True)
        self.pause.toggled.connect(runner.set_paused)
        self.cancel = tool_button(self, "Cancel", "Stop this task", lambda: runner.cancel(), flat=False)
        for w in (self.text, self.bar, self.pause, self.cancel):
            lay.addWidget(w)
        runner.changed.connect(self.update_view)
        runner.progressed.connect(lambda task, _p: task is runner.current and self.update_view())
        runner.ended.connect(self._ended)
        self.hide()

    def update_view(self) -> None:
        task, waiting = self.runner.current, self.runner.queued()
        if task is None and not waiting:
            self.hide()
            return
        self.show()
        if task is None:  # between two tasks
            self.text.setText(f"{waiting[0].title}…")
            self.bar.setRange(0, 0)
            return
        p, paused = task.progress, task.control.paused
        text = describe(task, p, paused)
        if waiting:
            text += f" · then {waiting[0].title[:1].lower()}{waiting[0].title[1:]}" + \
                (f" and {len(waiting) - 1} more" if len(waiting) > 1 else "")
        self.text.setText(text)
        self.text.setToolTip(task.blocked_by or (p.current if p else ""))
        if p is not None and p.total:
            self.bar.setRange(0, STEPS)
            self.bar.setValue(round(STEPS * min(1.0, p.done / p.total)))
        else:
            self.bar.setRange(0, 0)  # busy, amount unknown
        self.pause.setVisible(task.pausable)
        self.pause.blockSignals(True)
        self.pause.setChecked(paused)
        self.pause.blockSignals(False)
        self.pause.setText("Resume" if paused else "Pause")
        what = "indexing" if isinstance(task, IndexTask) else "this task"
        self.pause.setToolTip(f"Resume {what}" if paused else f"Pause {what} (search keeps working)")
        self.cancel.setToolTip("Stop indexing now (it goes on at the next change, or Rescan)"
                               if isinstance(task, IndexTask) else f"Stop: {task.title}")

    def _ended(self, task: Task) -> None:
        if task.state == "cancelled" and task.by_user:
            self.said.emit("Indexing stopped; it goes on at the next change, or Rescan." if isinstance(task, IndexTask)
                           else f"Cancelled: {task.title}.")
        elif isinstance(task, IndexTask) and task.state == "done" and not self.runner.busy:
            self.said.emit(UP_TO_DATE)
        self.update_view()
