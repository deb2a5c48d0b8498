"""Filters under the search field: folder, date range and sort order. A date turned on starts at the
library's oldest (or newest) day, as the latest search answer said (`set_days`), until the user picks one."""
from __future__ import annotations

import datetime as dt
import os

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDateEdit, QHBoxLayout, QLabel, QWidget

SORTS = {"relevance": "Best match", "newest": "Newest first", "oldest": "Oldest first"}


class FilterBar(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self._picked: set[QDateEdit] = set()  # dates the user chose: the library's days no longer move them
        self.folder = QComboBox(self)
        self.folder.setAccessibleName("Folder filter")
        self.folder.setMinimumContentsLength(18)
        self.folder.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder.addItem("All folders", None)
        self.folder.currentIndexChanged.connect(lambda _i: self.changed.emit())
        lay.addWidget(self.folder)
        self.use_after, self.after = self._date("From", QDate.currentDate().addYears(-1))
        self.use_before, self.before = self._date("To", QDate.currentDate())
        for w in (self.use_after, self.after, self.use_before, self.before):
            lay.addWidget(w)
        lay.addStretch(1)
        lay.addWidget(QLabel("Sort:", self))
        self.sort = QComboBox(self)
        self.sort.setAccessibleName("Sort order")
        for key, label in SORTS.items():
            self.sort.addItem(label, key)
        self.sort.currentIndexChanged.connect(lambda _i: self.changed.emit())
        lay.addWidget(self.sort)

    def _date(self, label: str, initial: QDate) -> tuple[QCheckBox, QDateEdit]:
        box = QCheckBox(label, self)
        edit = QDateEdit(initial, self)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("d MMM yyyy")
        edit.setEnabled(False)
        box.toggled.connect(edit.setEnabled)
        box.toggled.connect(lambda _on: self.changed.emit())
        edit.dateChanged.connect(lambda _d: box.isChecked() and self.changed.emit())
        edit.dateChanged.connect(lambda _d: self._picked.add(edit))
        return box, edit

    def set_days(self, oldest: dt.date, newest: dt.date) -> None:
        """The library's oldest and newest photo days: where "From" and "To" start when turned on."""
        for box, edit, day in ((self.use_after, self.after, oldest), (self.use_before, self.before, newest)):
            if not box.isChecked() and edit not in self._picked:
                edit.blockSignals(True)
                edit.setDate(QDate(day))
                edit.blockSignals(False)

    def set_folders(self, roots: list[str]) -> None:
        current = self.folder.currentData()
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem("All folders", None)
        for root in roots:
            self.folder.addItem(os.path.basename(root.rstrip(os.sep)) or root, root)
            self.folder.setItemData(self.folder.count() - 1, root, 3)  # tooltip role
        index = self.folder.findData(current)
        self.folder.setCurrentIndex(max(0, index))
        self.folder.blockSignals(False)
        if current is not None and index < 0:
            self.changed.emit()  # the folder filtered on was removed

    # -- values ----------------------------------------------------------------------------------------
    @property
    def folder_value(self) -> str | None:
        return self.folder.currentData()

    @property
    def after_value(self) -> dt.date | None:
        return self.after.date().toPython() if self.use_after.isChecked() else None

    @property
    def before_value(self) -> dt.date | None:
        return self.before.date().toPython() if self.use_before.isChecked() else None

    def set_browsing(self, browsing: bool) -> None:
        """With no query the library shows by date, so "Best match" reads "Newest first" there (and
        the other "Newest first" is hidden)."""
        self.sort.setItemText(0, SORTS["newest"] if browsing else SORTS["relevance"])
        self.sort.view().setRowHidden(1, browsing)

    @property
    def sort_value(self) -> str:
        return self.sort.currentData()

    def set_sort(self, key: str) -> None:
        index = self.sort.findData(key)
        if index >= 0:
            self.sort.setCurrentIndex(index)
