"""The results grid: photos in justified rows (`justify`), with month headers in date order.

A QAbstractItemView of its own, since QListView can only lay out cells of one size: each photo keeps
its shape, rows fill the width, Ctrl+wheel (or the zoom slider) changes the row height. Only what is
on screen is painted, so a grid of 100k photos costs what a screenful costs. Selection (Shift/Ctrl
click, a rubber band from empty space), dragging out as files and the keys (arrows, Page Up/Down,
Home/End, Enter) behave as in any item view. A photo not yet loaded is a placeholder of its shape
and a colour of its own, so the grid never looks like a wall of grey squares.
"""
from __future__ import annotations

import calendar
import datetime as dt
import zlib

from PySide6.QtCore import (QItemSelection, QModelIndex, QPersistentModelIndex, QPoint, QRect, QRectF, QSize, Qt,
                            QTimer, Signal)
from PySide6.QtGui import QColor, QFont, QGuiApplication, QKeyEvent, QPainter, QPalette, QPen, QRegion
from PySide6.QtWidgets import (QAbstractItemView, QRubberBand, QSlider, QStyle, QStyledItemDelegate,
                               QStyleOptionViewItem, QWidget)

from .justify import Layout

ROW_HEIGHT = 180           # the row height a new window starts with
ZOOM = (90, 420)           # the row heights Ctrl+wheel and the slider move between
ZOOM_STEP = 1.12           # one notch of the wheel, one Ctrl+plus
GAP = 4
HEADER = 40                # a month's header band
RELAYOUT_MS = 40           # a resize lays the grid out again at most this often


def month_of(taken_at: int) -> str:
    t = dt.datetime.fromtimestamp(taken_at, dt.timezone.utc)
    return f"{calendar.month_name[t.month]} {t.year}"


def placeholder_colour(path: str, dark: bool) -> QColor:
    """A muted colour of the photo's own (from its path), so the places of photos still loading differ."""
    hue = zlib.crc32(path.encode("utf-8", "surrogateescape")) % 360
    return QColor.fromHsl(hue, 40, 70 if dark else 205)


class ThumbnailDelegate(QStyledItemDelegate):
    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(ROW_HEIGHT * 4 // 3, ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        pal = option.palette
        rect = QRect(option.rect)
        model = index.model()
        row = index.row()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        pixmap = model.thumbnail(row)
        if pixmap is not None and not pixmap.isNull():
            # Fill the cell: the cell has the photo's shape, so at most a sliver is cropped.
            src = QSize(pixmap.size())
            scaled = rect.size().scaled(src, Qt.AspectRatioMode.KeepAspectRatio)
            source = QRect(QPoint(0, 0), scaled)
            source.moveCenter(QRect(QPoint(0, 0), src).center())
            painter.drawPixmap(rect, pixmap, source)
        else:
            dark = pal.color(QPalette.ColorRole.Window).lightness() < 128
            painter.fillRect(rect, placeholder_colour(model.result(row).path, dark))
            if model.broken(row):
                painter.setPen(pal.color(QPalette.ColorRole.Text))
                painter.drawText(rect.adjusted(6, 6, -6, -6), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                                 "Cannot show this photo")
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected:
            colour = pal.color(QPalette.ColorRole.Highlight)
            tint = QColor(colour)
            tint.setAlpha(70)
            painter.fillRect(rect, tint)
            painter.setPen(QPen(colour, 4))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(rect).adjusted(2, 2, -2, -2))
            mark = QRectF(rect.left() + 8, rect.top() + 8, 20, 20)
            painter.setPen(QPen(QColor("white"), 2))
            painter.setBrush(colour)
            painter.drawEllipse(mark)
            painter.drawPolyline([mark.topLeft() + p for p in (QPoint(5, 10), QPoint(9, 14), QPoint(15, 6))])
        elif hovered:
            painter.fillRect(rect, QColor(255, 255, 255, 40))
        if option.state & QStyle.StateFlag.State_HasFocus and not selected:
            painter.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(rect).adjusted(1, 1, -1, -1))
        painter.restore()


class ResultsView(QAbstractItemView):
    """Enter opens the preview; arrows move through the rows as laid out; Ctrl+wheel zooms."""

    open_requested = Signal(QModelIndex)
    zoomed = Signal(int)  # the new row height

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_ = Layout(height=ROW_HEIGHT, gap=GAP, header=HEADER)
        self.grouped = False   # month headers (the grid is in date order)
        self._aspects: list[float] = []  # per photo, as laid out
        self._months: list[str] = []
        self._hover = QModelIndex()
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, self.viewport())
        self._band_from: QPoint | None = None  # content coordinates where a rubber band started
        self._anchor = QPersistentModelIndex()  # where a Shift+click or Shift+arrow range starts
        self._kept: tuple[int, float, int] | None = None  # the photo a relayout keeps at the top, and where
        self._relayout = QTimer(self, singleShot=True, interval=RELAYOUT_MS, timeout=self._lay_keeping_place)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setMouseTracking(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setItemDelegate(ThumbnailDelegate(self))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setAccessibleName("Photos")
        self.doubleClicked.connect(self.open_requested.emit)

    # -- laying out ------------------------------------------------------------------------------------
    @property
    def row_height(self) -> int:
        return self.layout_.height

    def set_row_height(self, height: int) -> None:
        height = max(ZOOM[0], min(ZOOM[1], int(height)))
        if height != self.layout_.height:
            self.layout_.height = height
            self._lay_keeping_place()
            self.zoomed.emit(height)

    def set_grouped(self, grouped: bool) -> None:
        """Month headers on or off (takes effect with the next results)."""
        self.grouped = grouped

    def _items(self) -> tuple[list[float], list[str] | None]:
        """Each photo's aspect ratio and month, kept as rows arrive (a page appended adds only its own)."""
        model = self.model()
        results = model.results() if model is not None and hasattr(model, "results") else []
        for r in results[len(self._aspects):]:
            self._aspects.append(r.width / r.height if r.width > 0 and r.height > 0 else 4 / 3)
            self._months.append(month_of(r.taken_at))
        return self._aspects, self._months if self.grouped else None

    def _lay(self, extend: bool = False) -> None:
        self.layout_.width = max(1, self.viewport().width() - 2 * self.layout_.margin)
        aspects, sections = self._items()
        (self.layout_.extend if extend else self.layout_.lay)(aspects, sections)
        self.updateGeometries()
        self.viewport().update()

    def _lay_keeping_place(self) -> None:
        """Lay out again (a new width or zoom), keeping the photo at the top of the view where it was.
        Rows regroup at each change, so the photo kept is the one the user last scrolled to, not the first
        of whatever row it landed in (else each zoom would creep up a row)."""
        place = self._place()
        self._lay()
        if place is not None:
            item, within = place
            x, y, w, h = self.layout_.rect(item)
            self.verticalScrollBar().setValue(y + round(within * h))
            self._kept = (item, within, self.verticalOffset())

    def _place(self) -> tuple[int, float] | None:
        """The photo at the top of the view and how far down its row the view's top is (a fraction of the
        row's height); None at the very top."""
        top = self.verticalOffset()
        if self._kept is not None and self._kept[2] == top and self._kept[0] < len(self.layout_.x):
            return self._kept[:2]
        lay = self.layout_
        rows = lay.rows_between(top, top)
        if top <= 0 or not len(rows) or not lay.rows:
            return None
        row = lay.rows[rows[0]]
        return row.first, (top - row.y) / max(1, row.height)

    def reset(self) -> None:
        super().reset()
        self._hover = QModelIndex()
        self._kept = None
        self._aspects, self._months = [], []
        self._lay()

    def rowsInserted(self, parent: QModelIndex, start: int, end: int) -> None:
        super().rowsInserted(parent, start, end)
        self._lay(extend=start == len(self.layout_.x))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.viewport().width() - 2 * self.layout_.margin != self.layout_.width:
            if self.layout_.rows:
                self._relayout.start()  # a drag of the window's edge lays out once it pauses
            else:
                self._lay()
        self.updateGeometries()

    def updateGeometries(self) -> None:
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, self.layout_.content_height - self.viewport().height()))
        bar.setPageStep(self.viewport().height())
        bar.setSingleStep(max(20, self.layout_.height // 3))
        super().updateGeometries()
        model = self.model()
        if (model is not None and bar.maximum() == 0 and model.canFetchMore(QModelIndex())):
            QTimer.singleShot(0, lambda: model.canFetchMore(QModelIndex()) and model.fetchMore(QModelIndex()))

    def flush_layout(self) -> None:
        """Lay out now a resize still waiting (tests, and before a screenshot)."""
        if self._relayout.isActive():
            self._relayout.stop()
            self._lay_keeping_place()

    # -- QAbstractItemView's geometry ------------------------------------------------------------------
    def horizontalOffset(self) -> int:
        return 0

    def verticalOffset(self) -> int:
        return self.verticalScrollBar().value()

    def isIndexHidden(self, index: QModelIndex) -> bool:
        return False

    def visualRect(self, index: QModelIndex) -> QRect:
        if not index.isValid() or index.row() >= len(self.layout_.x):
            return QRect()
        x, y, w, h = self.layout_.rect(index.row())
        return QRect(x, y - self.verticalOffset(), w, h)

    def indexAt(self, point: QPoint) -> QModelIndex:
        i = self.layout_.item_at(point.x(), point.y() + self.verticalOffset())
        return QModelIndex() if i is None or self.model() is None else self.model().index(i, 0)

    def scrollTo(self, index: QModelIndex, hint=QAbstractItemView.ScrollHint.EnsureVisible) -> None:
        if not index.isValid() or index.row() >= len(self.layout_.x):
            return
        _, y, _, h = self.layout_.rect(index.row())
        bar, view = self.verticalScrollBar(), self.viewport().height()
        if hint == QAbstractItemView.ScrollHint.PositionAtTop:
            bar.setValue(y - GAP)
        elif hint == QAbstractItemView.ScrollHint.PositionAtCenter:
            bar.setValue(y + h // 2 - view // 2)
        elif y - GAP < bar.value():
            # A photo that opens a month shows with its header.
            header = next((hy for hy, _, first in self.layout_.headers if first == index.row()), None)
            bar.setValue((header if header is not None else y) - GAP)
        elif y + h + GAP > bar.value() + view:
            bar.setValue(y + h + GAP - view)

    def moveCursor(self, action, modifiers) -> QModelIndex:
        model, lay = self.model(), self.layout_
        count = len(lay.x)
        if model is None or count == 0:
            return QModelIndex()
        current = self.currentIndex().row() if self.currentIndex().isValid() else -1
        if current < 0:
            return model.index(0, 0)
        A = QAbstractItemView.CursorAction
        x, y, w, h = lay.rect(current)
        centre = x + w / 2
        target = current
        if action in (A.MoveLeft, A.MovePrevious):
            target = current - 1
        elif action in (A.MoveRight, A.MoveNext):
            target = current + 1
        elif action in (A.MoveUp, A.MoveDown):
            r = lay.row_of[current] + (-1 if action == A.MoveUp else 1)
            if 0 <= r < len(lay.rows):
                target = lay.nearest_in_row(r, centre)
        elif action in (A.MovePageUp, A.MovePageDown):
            step = self.viewport().height() * (-1 if action == A.MovePageUp else 1)
            rows = lay.rows_between(y + step, y + step)
            r = rows[0] if len(rows) else (0 if step < 0 else len(lay.rows) - 1)
            target = lay.nearest_in_row(min(max(r, 0), len(lay.rows) - 1), centre)
        elif action == A.MoveHome:
            target = 0
        elif action == A.MoveEnd:
            target = count - 1
        return model.index(min(max(target, 0), count - 1), 0)

    def currentChanged(self, current: QModelIndex, previous: QModelIndex) -> None:
        super().currentChanged(current, previous)
        if not QGuiApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._anchor = QPersistentModelIndex(current)

    def setSelection(self, rect: QRect, command) -> None:
        """A rubber band selects what it covers; Shift+click and Shift+arrows select the photos between,
        in their order (a rectangle between two photos in different rows would skip some)."""
        model = self.model()
        if model is None:
            return
        current = self.currentIndex()
        if (self._band_from is None and self._anchor.isValid() and current.isValid()
                and QGuiApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier):
            a, b = sorted((self._anchor.row(), current.row()))
            self.selectionModel().select(QItemSelection(model.index(a, 0), model.index(b, 0)), command)
            return
        area = rect.normalized().translated(0, self.verticalOffset())
        lay = self.layout_
        selection = QItemSelection()
        for r in lay.rows_between(area.top(), area.bottom()):
            row = lay.rows[r]
            if row.y > area.bottom() or row.y + row.height < area.top():
                continue
            hit = [i for i in range(row.first, row.end)
                   if lay.x[i] <= area.right() and lay.x[i] + lay.w[i] >= area.left()]
            if hit:
                selection.select(model.index(hit[0], 0), model.index(hit[-1], 0))
        self.selectionModel().select(selection, command)

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:
        region = QRegion()
        top, bottom = self.verticalOffset(), self.verticalOffset() + self.viewport().height()
        shown = self.layout_.rows_between(top, bottom)
        if not len(shown):
            return region
        first, end = self.layout_.rows[shown[0]].first, self.layout_.rows[shown[-1]].end
        for rng in selection:
            for i in range(max(rng.top(), first), min(rng.bottom() + 1, end)):
                region += self.visualRect(self.model().index(i, 0))
        return region

    # -- painting ----------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        model = self.model()
        if model is None:
            return
        painter = QPainter(self.viewport())
        top = self.verticalOffset()
        bottom = top + self.viewport().height()
        lay = self.layout_
        current = self.currentIndex()
        selection = self.selectionModel()
        focus = self.hasFocus()
        delegate = self.itemDelegate()
        for r in lay.rows_between(top, bottom):
            row = lay.rows[r]
            for i in range(row.first, row.end):
                index = model.index(i, 0)
                option = QStyleOptionViewItem()
                self.initViewItemOption(option)
                option.rect = QRect(lay.x[i], row.y - top, lay.w[i], row.height)
                if not event.rect().intersects(option.rect):
                    continue
                if selection is not None and selection.isSelected(index):
                    option.state |= QStyle.StateFlag.State_Selected
                if index == self._hover:
                    option.state |= QStyle.StateFlag.State_MouseOver
                if focus and index == current:
                    option.state |= QStyle.StateFlag.State_HasFocus
                delegate.paint(painter, option, index)
        if lay.headers and self.grouped:
            font = QFont(self.font())
            font.setPointSizeF(font.pointSizeF() * 1.25)
            font.setBold(True)
            painter.setFont(font)
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            for y, text, _ in lay.headers_between(top, bottom):
                band = QRect(lay.margin + 4, y - top, lay.width, HEADER)
                painter.drawText(band, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        painter.end()

    # -- mouse and keys ------------------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:
        index = self.indexAt(event.position().toPoint())
        if index != self._hover:
            old, self._hover = self._hover, QModelIndex(index)
            for i in (old, index):
                if i.isValid():
                    self.viewport().update(self.visualRect(i))
        super().mouseMoveEvent(event)
        if self._band_from is not None and event.buttons() & Qt.MouseButton.LeftButton:
            start = self._band_from - QPoint(0, self.verticalOffset())
            self._band.setGeometry(QRect(start, event.position().toPoint()).normalized())
            self._band.show()

    def mousePressEvent(self, event) -> None:
        on_nothing = not self.indexAt(event.position().toPoint()).isValid()
        self._band_from = (event.position().toPoint() + QPoint(0, self.verticalOffset())
                           if on_nothing and event.button() == Qt.MouseButton.LeftButton else None)
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        self._band_from = None
        self._band.hide()
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event) -> None:
        if self._hover.isValid():
            old, self._hover = self._hover, QModelIndex()
            self.viewport().update(self.visualRect(old))
        super().leaveEvent(event)

    def zoom(self, steps: float) -> None:
        """Bigger (steps > 0) or smaller photos: Ctrl+wheel, and the window's Ctrl+plus and Ctrl+minus."""
        self.set_row_height(round(self.layout_.height * (ZOOM_STEP ** steps)))

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = event.angleDelta().y() / 120
            if steps:
                self.zoom(steps)
            event.accept()
            return
        super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex())
            return
        super().keyPressEvent(event)

    def scrollToTop(self) -> None:
        self.verticalScrollBar().setValue(0)


def zoom_slider(view: ResultsView, parent: QWidget) -> QSlider:
    """The status bar's zoom: the grid's row height, kept in step with Ctrl+wheel and Ctrl+plus/minus."""
    slider = QSlider(Qt.Orientation.Horizontal, parent)
    slider.setRange(*ZOOM)
    slider.setValue(view.row_height)
    slider.setFixedWidth(120)
    slider.setToolTip("Photo size (Ctrl+wheel, Ctrl++ and Ctrl+−)")
    slider.setAccessibleName("Photo size")
    slider.valueChanged.connect(view.set_row_height)
    view.zoomed.connect(lambda h: slider.value() != h and slider.setValue(h))
    return slider
