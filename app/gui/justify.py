"""The justified layout of the grid: rows of photos that keep their shapes and fill the width exactly.

As Google Photos and Flickr lay out a library: photos are put in a row at the target height until the
row is about as wide as the window; the row's height is then scaled so that it fills the width, with
the row taken with or without its last photo, whichever height is nearer the target. The last row of
a section keeps the target height and is not stretched. Sections (months, when the grid is in date
order) start with a header band. Edges are rounded once per row from exact positions, so every full
row ends on the same pixel. Plain Python and no Qt: `extend` lays out only what was appended (a page
fetched while scrolling) from the last row that was still open, so a 100k-photo library is laid out a
page at a time.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

MAX_ASPECT = 4.0    # a panorama is laid out as if this wide (it is shown cropped to that shape)
MIN_ASPECT = 0.25   # a tall strip likewise
STRETCH = 1.6       # a row's height may grow to this much of the target (few wide photos) before the row takes one more


@dataclass
class Row:
    y: int
    height: int
    first: int      # first item
    end: int        # one past the last item
    full: bool      # stretched to fill the width (the last row of a section is not)


@dataclass
class Layout:
    width: int = 800          # the space to fill, margins excluded
    height: int = 180         # the target row height
    gap: int = 4
    margin: int = 8
    header: int = 40          # a section header's band (0: no sections)
    rows: list[Row] = field(default_factory=list)
    headers: list[tuple[int, str, int]] = field(default_factory=list)  # y, text, its first item
    x: list[int] = field(default_factory=list)        # per item: left edge
    w: list[int] = field(default_factory=list)        # per item: width
    row_of: list[int] = field(default_factory=list)   # per item: its row
    bottom: int = 0                                    # content height
    _row_y: list[int] = field(default_factory=list)    # rows' tops, for bisection

    # -- laying out -----------------------------------------------------------------------------------
    def lay(self, aspects: list[float], sections: list[str] | None = None) -> None:
        """Lay out every item anew (`sections`: per item, its header's text; None for no headers)."""
        self.rows, self.headers, self.x, self.w, self.row_of, self._row_y = [], [], [], [], [], []
        self.bottom = self.margin
        self._lay_from(0, aspects, sections)

    def extend(self, aspects: list[float], sections: list[str] | None = None) -> None:
        """Items were appended: lay out again from the last open row (the new items may join it)."""
        start = len(self.x)
        if self.rows and not self.rows[-1].full:
            row = self.rows.pop()
            self._row_y.pop()
            start, self.bottom = row.first, row.y
            if self.headers and self.headers[-1][2] == row.first:  # the section began with this row
                self.bottom = self.headers.pop()[0]
                if self.headers or self.rows:
                    self.bottom -= self.gap * 2  # the space before a header, added again with it
        if not self.rows and not self.headers:
            self.bottom = self.margin
        del self.x[start:], self.w[start:], self.row_of[start:]
        self._lay_from(start, aspects, sections)

    def _lay_from(self, start: int, aspects: list[float], sections: list[str] | None) -> None:
        n = len(aspects)
        i = start
        while i < n:
            if sections is not None and self.header and (i == 0 or sections[i] != sections[i - 1]):
                if self.headers or self.rows:
                    self.bottom += self.gap * 2
                self.headers.append((self.bottom, sections[i], i))
                self.bottom += self.header
            end = n
            if sections is not None:  # the section's end
                key = sections[i]
                end = i + 1
                while end < n and sections[end] == key:
                    end += 1
            i = self._lay_section(i, end, aspects)

    def _aspect(self, a: float) -> float:
        return min(MAX_ASPECT, max(MIN_ASPECT, a or 4 / 3), max(1, self.width) / self.height)

    def _lay_section(self, i: int, end: int, aspects: list[float]) -> int:
        target, width, gap = self.height, max(1, self.width), self.gap
        while i < end:
            first, total, best, closed = i, 0.0, None, False  # total: the row's aspects summed
            while i < end:
                total += self._aspect(aspects[i])
                i += 1
                h = (width - gap * (i - first - 1)) / total  # the height that fills the width
                if h <= target:
                    if best is not None and abs(math.log(best[1] / target)) < abs(math.log(h / target)):
                        i, total = best[0], best[2]  # the row is nearer the target without this photo
                    closed = True
                    break
                if h <= target * STRETCH:
                    best = (i, h, total)
            self._add_row(first, i, total, aspects, full=closed)
        return i

    def _add_row(self, first: int, end: int, total: float, aspects: list[float], full: bool) -> None:
        width, gap = self.width, self.gap
        h = (width - gap * (end - first - 1)) / total if full else float(self.height)
        edge = float(self.margin)
        row = len(self.rows)
        for k in range(first, end):
            a = self._aspect(aspects[k])
            left = round(edge)
            edge += a * h
            right = self.margin + width if full and k == end - 1 else round(edge)
            self.x.append(left)
            self.w.append(max(1, right - left))
            self.row_of.append(row)
            edge += gap
        height = max(1, round(h))
        self.rows.append(Row(self.bottom, height, first, end, full))
        self._row_y.append(self.bottom)
        self.bottom += height + gap

    # -- asking -----------------------------------------------------------------------------------------
    @property
    def content_height(self) -> int:
        return self.bottom + self.margin

    def rect(self, i: int) -> tuple[int, int, int, int]:
        """Item `i`'s x, y, width, height in content coordinates."""
        row = self.rows[self.row_of[i]]
        return self.x[i], row.y, self.w[i], row.height

    def rows_between(self, top: int, bottom: int) -> range:
        """The rows that show between two content heights."""
        first = max(0, bisect_right(self._row_y, top) - 1)
        last = bisect_right(self._row_y, bottom)
        return range(first, last)

    def item_at(self, x: int, y: int) -> int | None:
        for r in self.rows_between(y, y):
            row = self.rows[r]
            if row.y <= y < row.y + row.height:
                for i in range(row.first, row.end):
                    if self.x[i] <= x < self.x[i] + self.w[i]:
                        return i
        return None

    def nearest_in_row(self, r: int, x: float) -> int:
        """The item of row `r` whose centre is nearest `x`."""
        row = self.rows[r]
        return min(range(row.first, row.end), key=lambda i: abs(self.x[i] + self.w[i] / 2 - x))

    def headers_between(self, top: int, bottom: int) -> list[tuple[int, str, int]]:
        return [h for h in self.headers if top - self.header <= h[0] <= bottom]
