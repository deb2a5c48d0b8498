"""The live chart of a fine-tuning run: training loss as it goes, and held-out R@5 after each epoch.

Both share one x axis counted in epochs (a step's x is how far through the run it is, in epochs), so
the loss falls and the recall rises on the same time line. Loss is on the left axis, R@5 (0 to 1) on
the right. QtCharts ships with PySide6; nothing here knows about the library or training.
"""
from __future__ import annotations

from PySide6.QtCharts import QChart, QChartView, QLineSeries, QScatterSeries, QValueAxis
from PySide6.QtCore import QMargins, QPointF, Qt
from PySide6.QtGui import QPainter, QPalette, QPen
from PySide6.QtWidgets import QWidget


class TuneChart(QChartView):
    def __init__(self, parent: QWidget | None = None):
        self.chart_ = QChart()
        super().__init__(self.chart_, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        chart = self.chart_
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.setBackgroundRoundness(0)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.loss = QLineSeries(chart)
        self.loss.setName("Training loss")
        self.r5 = QLineSeries(chart)
        self.r5.setName("Held-out R@5")
        self.r5_points = QScatterSeries(chart)  # a dot per epoch, so one epoch shows too
        self.r5_points.setMarkerSize(7)
        for s in (self.loss, self.r5, self.r5_points):
            chart.addSeries(s)
        chart.legend().markers(self.r5_points)[0].setVisible(False)
        self.x = QValueAxis(chart)
        self.x.setTitleText("Epoch")
        self.x.setLabelFormat("%.0f")
        self.y_loss = QValueAxis(chart)
        self.y_loss.setTitleText("Loss")
        self.y_loss.setLabelFormat("%.3g")
        self.y_loss.setTickCount(6)
        self.y_r5 = QValueAxis(chart)
        self.y_r5.setTitleText("R@5")
        self.y_r5.setRange(0.0, 1.0)
        self.y_r5.setLabelFormat("%.1f")
        self.y_r5.setTickCount(6)
        chart.addAxis(self.x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.y_loss, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(self.y_r5, Qt.AlignmentFlag.AlignRight)
        self.loss.attachAxis(self.x)
        self.loss.attachAxis(self.y_loss)
        for s in (self.r5, self.r5_points):
            s.attachAxis(self.x)
            s.attachAxis(self.y_r5)
        self.apply_palette()
        self.reset(1)

    def apply_palette(self) -> None:
        """Follow the window's light or dark palette (the chart has its own theme otherwise)."""
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        self.chart_.setBackgroundBrush(base)
        self.chart_.legend().setLabelColor(text)
        for axis in (self.x, self.y_loss, self.y_r5):
            axis.setLabelsColor(text)
            axis.setTitleBrush(text)
        highlight = pal.color(QPalette.ColorRole.Highlight)
        self.loss.setPen(QPen(highlight, 2))
        self.r5.setPen(QPen(Qt.GlobalColor.darkGreen if base.lightness() > 128 else Qt.GlobalColor.green, 2))
        self.r5_points.setColor(self.r5.pen().color())
        self.r5_points.setBorderColor(self.r5.pen().color())

    def reset(self, epochs: int) -> None:
        """A new run of `epochs` epochs: empty series, the x axis covering the whole run."""
        self.epochs = max(1, int(epochs or 1))
        self.step_losses = 0
        for s in (self.loss, self.r5, self.r5_points):
            s.clear()
        self.x.setRange(0.0, float(self.epochs))
        # A label on whole epochs only: every epoch up to 10, then every 2nd, 3rd… epoch.
        self.x.setTickType(QValueAxis.TickType.TicksDynamic)
        self.x.setTickAnchor(0.0)
        self.x.setTickInterval(float(-(-self.epochs // 10)))
        self.y_loss.setRange(0.0, 1.0)
        self._loss_max = 0.0

    def add_step(self, done: int, total: int, loss: float) -> None:
        """Loss after `done` of `total` training steps (all epochs together)."""
        if not total or loss is None:
            return
        self.step_losses += 1
        self._add_loss(self.epochs * done / total, loss)

    def add_epoch(self, epoch: int, loss: float | None, r5: float | None) -> None:
        """The end of epoch `epoch` (1 = the first): its held-out R@5, and its mean loss when no steps came."""
        if loss is not None and not self.step_losses:
            self._add_loss(float(epoch), loss)
        if r5 is not None:
            self.r5.append(float(epoch), float(r5))
            self.r5_points.append(float(epoch), float(r5))

    def add_start(self, r5: float | None) -> None:
        """The base model's held-out R@5, at x = 0 (where the run starts from; known at its end)."""
        if r5 is not None and not any(p.x() == 0.0 for p in self.r5.points()):
            self.r5.insert(0, QPointF(0.0, float(r5)))
            self.r5_points.insert(0, QPointF(0.0, float(r5)))

    def _add_loss(self, x: float, loss: float) -> None:
        loss = float(loss)
        if loss != loss:  # NaN: the run stops and says so; nothing to draw
            return
        self.loss.append(QPointF(x, loss))
        if loss > self._loss_max:
            self._loss_max = loss
            self.y_loss.setRange(0.0, _nice(loss))

    def points(self) -> tuple[int, int]:
        """How many loss and R@5 points are drawn."""
        return self.loss.count(), self.r5.count()


def _nice(v: float) -> float:
    """A round top for the axis just above v (1, 2, 5 × 10^k)."""
    import math

    if v <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * k:
            return m * k
    return 10 * k
