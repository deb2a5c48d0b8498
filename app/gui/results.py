"""The results of a search as a Qt list model: pages appended as the user scrolls (fetchMore)."""
from __future__ import annotations

import datetime as dt
import os

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from .thumbs import ThumbnailLoader

PathRole = Qt.ItemDataRole.UserRole + 1
ScoreRole = Qt.ItemDataRole.UserRole + 2
TakenRole = Qt.ItemDataRole.UserRole + 3
ResultRole = Qt.ItemDataRole.UserRole + 4


def when(taken_at: int) -> str:
    """A photo's wall-clock time as people write it."""
    t = dt.datetime.fromtimestamp(taken_at, dt.timezone.utc)
    return f"{t.day} {t:%b %Y, %H:%M}"


class ResultsModel(QAbstractListModel):
    more_wanted = Signal()  # the view scrolled to the end and there are more results to fetch

    def __init__(self, thumbs: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.thumbs = thumbs
        self._results: list = []
        self._row_of: dict[str, list[int]] = {}
        self._more = False
        self._fetching = False
        thumbs.loaded.connect(self._thumbnail_loaded)

    # -- filling ---------------------------------------------------------------------------------------
    def set_results(self, results: list, more: bool) -> None:
        self.beginResetModel()
        self.thumbs.forget_queue()
        self._results = list(results)
        self._row_of = {}
        for i, r in enumerate(self._results):
            self._row_of.setdefault(r.path, []).append(i)
        self._more, self._fetching = more, False
        self.endResetModel()

    def append(self, results: list, more: bool) -> None:
        self._fetching = False
        self._more = more
        if not results:
            return
        start = len(self._results)
        self.beginInsertRows(QModelIndex(), start, start + len(results) - 1)
        for i, r in enumerate(results, start):
            self._results.append(r)
            self._row_of.setdefault(r.path, []).append(i)
        self.endInsertRows()

    def clear(self) -> None:
        self.set_results([], False)

    def result(self, row: int):
        return self._results[row]

    def thumbnail(self, row: int):
        """The row's thumbnail, or None while it loads (a plain Python call: the delegate paints many)."""
        return self.thumbs.pixmap(self._results[row].path)

    def broken(self, row: int) -> bool:
        return self.thumbs.failed(self._results[row].path)

    def results(self) -> list:
        return self._results

    def paths(self) -> list[str]:
        return [r.path for r in self._results]

    # -- Qt's model interface --------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._results)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._results):
            return None
        r = self._results[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(r.path)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbs.pixmap(r.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            # No raw score: a cosine such as 0.158 means nothing to a user (issue 12).
            return (f"{os.path.basename(r.path)}\n{when(r.taken_at)}\n"
                    f"{r.width} × {r.height}\n{os.path.dirname(r.path)}")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{os.path.basename(r.path)}, {when(r.taken_at)}"
        if role == PathRole:
            return r.path
        if role == ScoreRole:
            return r.score
        if role == TakenRole:
            return r.taken_at
        if role == ResultRole:
            return r
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:
        return not parent.isValid() and self._more and not self._fetching

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:
        if self.canFetchMore(parent):
            self._fetching = True
            self.more_wanted.emit()

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes):
        from PySide6.QtCore import QMimeData, QUrl

        data = QMimeData()
        data.setUrls([QUrl.fromLocalFile(self._results[i.row()].path) for i in indexes if i.isValid()])
        return data

    # -- thumbnails arriving ---------------------------------------------------------------------------
    def _thumbnail_loaded(self, path: str) -> None:
        for row in self._row_of.get(path, ()):
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])
