"""The search session without any window: paging, sorting by date, stale answers, and the
answer-now-then-fresh rule (app/library/session.py; the window and `glimpse search` both use it)."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from conftest import make_photos


@pytest.fixture
def indexed(library, tmp_path):
    """12 indexed photos taken a day apart (2024-01-01 … 2024-01-12), in two folders."""
    paths = make_photos(tmp_path / "A", 6) + make_photos(tmp_path / "B", 6, start=6)
    for i, p in enumerate(paths):
        t = dt.datetime(2024, 1, 1 + i, 12).timestamp()
        os.utime(p, (t, t))
    library.folders.add(str(tmp_path / "A"))
    library.folders.add(str(tmp_path / "B"))
    library.update()
    return [str(p) for p in paths]


def _pages(library, session, request):
    """Every page of the session's query, from `request` on, asked as a scrolling window asks."""
    from app.library.session import answer

    pages = []
    while request is not None:
        pages.append(answer(library, request))
        assert session.take(pages[-1])
        request = session.more(sum(len(a.results) for a in pages))
    return pages


def test_pages_cover_every_photo_once(library, indexed):
    from app.library.session import Session

    session = Session(page_size=5)
    first = session.ask(text="a red boat")
    assert first.k == 5 and first.offset == 0 and first.generation == 1
    pages = _pages(library, session, first)
    assert [(p.request.offset, len(p.results), p.more) for p in pages] == [(0, 5, True), (5, 5, True), (10, 2, False)]
    paths = [r.path for p in pages for r in p.results]
    assert sorted(paths) == sorted(indexed)  # no gaps, no repeats
    scores = [r.score for r in pages[0].results]
    assert scores == sorted(scores, reverse=True)
    assert session.more(12) is None  # the last page said there is no more


def test_sorting_by_date_pages_through_the_best_matches_in_date_order(library, indexed):
    from app.library.session import Session, answer

    session = Session(page_size=5)
    newest = _pages(library, session, session.ask(text="snow", sort="newest"))
    assert [len(p.results) for p in newest] == [5, 5, 2]
    taken = [r.taken_at for p in newest for r in p.results]
    assert len(taken) == 12 and taken == sorted(taken, reverse=True)
    assert [r.path for r in newest[0].results] == indexed[::-1][:5]
    oldest = answer(library, session.ask(text="snow", sort="oldest", k=20))
    assert [r.path for r in oldest.results] == indexed and not oldest.more
    # Filters apply before sorting: one folder, and the days after 2024-01-03 up to 2024-01-05.
    some = answer(library, session.ask(text="snow", sort="oldest", after=dt.date(2024, 1, 4),
                                       before=dt.date(2024, 1, 5)))
    assert [r.path for r in some.results] == indexed[3:5]
    folder = answer(library, session.ask(text="snow", sort="newest", folder=os.path.dirname(indexed[7])))
    assert [r.path for r in folder.results] == indexed[6:][::-1][:5] and folder.more


def test_answers_to_a_replaced_query_are_not_current(library, indexed):
    from app.library.session import Session, answer

    session = Session()
    old = answer(library, session.ask(text="cats"))
    new = session.ask(text="dogs")
    assert not session.current(old) and not session.take(old) and session.last is None
    assert session.take(answer(library, new)) and session.last.request is new
    assert session.ask(text="  ").empty and session.more(0) is None and session.again(0) is None


def test_an_answer_comes_at_once_then_again_up_to_date(library, indexed, tmp_path):
    from app.library.session import Session, answer

    session = Session()
    assert len(answer(library, session.ask(text="a forest")).results) == 12  # loads the photos
    make_photos(tmp_path / "A", 3, start=100)
    library.update()  # the catalog changed since the photos were loaded
    early = []
    final = answer(library, session.ask(text="a forest"), early=early.append)
    assert [len(a.results) for a in early] == [12]  # at once, from what was loaded
    assert len(final.results) == 15 and final.request is early[0].request
    # The window's refresh asks for what is on screen, up to date, in the same query.
    again = session.again(15)
    assert again.fresh and again.k == 200 and again.generation == final.request.generation
    make_photos(tmp_path / "B", 1, start=200)
    library.update()
    early.clear()
    assert len(answer(library, again, early=early.append).results) == 16 and early == []  # fresh: one answer


def test_bad_requests_say_why(library, indexed):
    from app.library.query import QueryError
    from app.library.session import SearchRequest, answer, day

    with pytest.raises(QueryError, match="not a date"):
        day("yesterday")
    assert day("2024-02-29") == dt.date(2024, 2, 29) and day(None) is None
    with pytest.raises(QueryError, match="k must be positive"):
        answer(library, SearchRequest("cats", k=0))
    with pytest.raises(QueryError, match="not a sort order"):
        answer(library, SearchRequest("cats", sort="sideways"))
