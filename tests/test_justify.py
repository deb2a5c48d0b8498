"""The justified layout laid out a page at a time (as scrolling fetches pages) is the layout of all at once."""
from __future__ import annotations

import random

from app.gui.justify import Layout


def shape(lay: Layout):
    return lay.headers, [(r.y, r.height, r.first, r.end, r.full) for r in lay.rows], lay.x, lay.w, lay.content_height


def test_pages_appended_lay_out_as_all_at_once():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(5, 80)
        aspects = [rng.choice([4 / 3, 3 / 4, 1.5, 16 / 9, 1.0, 3.0]) for _ in range(n)]
        months = [f"M{k}" for k in range(n) for _ in range(rng.randint(1, 9))][:n]  # months of 1-9 photos
        whole = Layout(width=900, height=180)
        whole.lay(aspects, months)
        paged, page = Layout(width=900, height=180), rng.randint(1, 7)
        for end in range(page, n + page, page):
            paged.extend(aspects[:end], months[:end])
        assert shape(paged) == shape(whole)
