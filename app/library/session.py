"""A search session: what a front asks (terms, filters, sort, a page), and how it is answered.

`Session` keeps the query on screen: a new query gets a new generation, so answers to queries the
user has since replaced are known and dropped; `more` asks for the next page and `again` for what is
shown, up to date (the library changed). `answer` runs one request. Relevance pages come from the
searcher; a date sort takes the best `DATE_SORT_LIMIT` matches, orders them by date and pages them.
A request with no terms and `browse` set lists the library itself, newest first (or oldest, by the
sort), filters applied: what the window shows before anything is typed. With `cut`, a search shows only
the matches above its relevance floor (`relevance`), and says when nothing stood out (`absent`).
Not `fresh`: the answer comes at once from the photos already loaded; if the catalog had changed
since, `early(first)` receives that answer and the returned one is answered again, up to date. No Qt.
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .query import QueryError

BROWSE_PAGE = 1000  # photos per page after the first while browsing the library
DATE_SORT_LIMIT = 1000  # a date-sorted answer holds the best this many matches
SORTS = ("relevance", "newest", "oldest")


@dataclass(frozen=True)
class SearchRequest:
    text: str = ""
    images: tuple[str, ...] = ()     # terms to add: image files (dropped, pasted), or text (the CLI's --add)
    subtract: tuple[str, ...] = ()   # terms to subtract
    similar: tuple[str, ...] = ()    # indexed photos ("find similar")
    folder: str | None = None
    after: dt.date | None = None     # taken on or after this day
    before: dt.date | None = None    # taken on or before this day
    sort: str = "relevance"          # relevance | newest | oldest
    offset: int = 0
    k: int = 200
    fresh: bool = False              # wait for the latest catalog rather than answer from what is loaded
    browse: bool = False             # no terms: the library itself, by date
    cut: bool = False                # only matches above the relevance floor
    generation: int = 0

    @property
    def empty(self) -> bool:
        """No terms: no image, and no word in the text (a lone "+" or "-" is not a query yet)."""
        return not (re.search(r"\w", self.text) or self.images or self.similar)

    @property
    def browsing(self) -> bool:
        return self.browse and self.empty

    @property
    def idle(self) -> bool:
        """Nothing to answer (no terms, and not browsing)."""
        return self.empty and not self.browse


@dataclass
class SearchAnswer:
    request: SearchRequest
    results: list = field(default_factory=list)
    more: bool = False               # another page follows
    seconds: float = 0.0
    absent: bool = False             # nothing stood out: only the closest few are shown
    total: int | None = None         # browsing: how many photos the filters keep
    days: tuple[dt.date, dt.date] | None = None  # the searched photos' oldest and newest day


def day(text: str | None) -> dt.date | None:
    """A calendar day as typed (YYYY-MM-DD), or None for none."""
    from .search import parse_day

    return parse_day(text) if text else None


def answer(library, request: SearchRequest, early: Callable[[SearchAnswer], None] | None = None) -> SearchAnswer:
    """Answer one request with the library's active model (see the module's note on `early`)."""
    from .query import parse
    from .search import Filters

    if request.k <= 0 or request.offset < 0:
        raise QueryError("k must be positive and offset not negative")
    if request.sort not in SORTS:
        raise QueryError(f"'{request.sort}' is not a sort order ({', '.join(SORTS)})")
    filters = Filters.dates(request.after, request.before, request.folder)
    terms = None if request.browsing else parse(request.text, add=list(request.images), sub=list(request.subtract),
                                                similar=list(request.similar))
    searcher = library.searcher()
    previous = searcher.loaded
    first = _run(searcher, request, terms, filters, request.fresh)
    if request.fresh or not searcher.catch_up(previous):
        return first
    if early is not None:
        early(first)
    return _run(searcher, request, terms, filters, True)


def _run(searcher, request: SearchRequest, terms, filters, fresh: bool) -> SearchAnswer:
    reply = _answer(searcher, request, terms, filters, fresh)
    reply.days = searcher.loaded.days if searcher.loaded is not None else None  # for the date filter
    return reply


def _answer(searcher, request: SearchRequest, terms, filters, fresh: bool) -> SearchAnswer:
    t0 = time.perf_counter()
    if terms is None:  # browsing
        results = searcher.browse(request.k + 1, request.offset, filters, newest=request.sort != "oldest",
                                  fresh=fresh)
        return SearchAnswer(request, results[:request.k], len(results) > request.k, time.perf_counter() - t0,
                            total=results.total)
    if request.sort == "relevance":
        hits = searcher.search(terms, k=request.k + 1, offset=request.offset, filters=filters, fresh=fresh,
                               cut=request.cut)
        more = len(hits) > request.k
        results = hits[:request.k]
    else:
        hits = searcher.search(terms, k=DATE_SORT_LIMIT, filters=filters, fresh=fresh, cut=request.cut)
        results = sorted(hits, key=lambda r: r.taken_at, reverse=request.sort == "newest")
        more = len(results) > request.offset + request.k
        results = results[request.offset:request.offset + request.k]
    return SearchAnswer(request, list(results), more, time.perf_counter() - t0, hits.absent)


class Session:
    """The query a front shows: which answers are current, and the requests for more and for a refresh."""

    def __init__(self, page_size: int = 200):
        self.page_size = page_size
        self.request: SearchRequest | None = None   # the answer on screen (or coming) is for this
        self.last: SearchAnswer | None = None        # the latest current answer taken
        self._generation = itertools.count(1)

    def ask(self, **fields) -> SearchRequest:
        """A new query (its first page); earlier answers stop being current."""
        self.request = SearchRequest(**{"k": self.page_size, **fields}, generation=next(self._generation))
        if self.request.idle:
            self.last = None
        return self.request

    def more(self, shown: int) -> SearchRequest | None:
        """The next page, after the `shown` results; None when there is no query or no more."""
        if self.request is None or self.request.idle or (self.last is not None and not self.last.more):
            return None
        k = BROWSE_PAGE if self.request.browsing else self.page_size  # scrolling a library goes far
        return replace(self.request, offset=shown, k=k, fresh=False)

    def again(self, shown: int) -> SearchRequest | None:
        """The query again, up to date, as many results as are shown (the library changed)."""
        if self.request is None or self.request.idle:
            return None
        return replace(self.request, offset=0, k=max(self.page_size, shown), fresh=True)

    def current(self, answer: SearchAnswer) -> bool:
        return self.request is not None and answer.request.generation == self.request.generation

    def take(self, answer: SearchAnswer) -> bool:
        """Record a current answer; False (and nothing recorded) for one to a replaced query."""
        if not self.current(answer):
            return False
        self.last = answer
        return True
