"""The relevance floor: a search shows the photos that stand out, and says so when nothing does."""
from __future__ import annotations

import numpy as np
import pytest

from app.library.catalog import Catalog
from app.library.relevance import ABSENT_SHOW, relevance
from app.library.search import Searcher

N, CATS = 1000, 20


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def cats(tmp_path, tiny_stored):
    """1000 unrelated photos and 20 of one subject (vectors near `c`), the cats taken last."""
    from model.runtime import Encoder

    dim, space = tiny_stored.embed_dim, tiny_stored.image_space
    rng = np.random.default_rng(3)
    c = unit(rng.normal(size=dim))
    vectors = np.concatenate([unit(rng.normal(size=(N, dim))), unit(c + rng.normal(scale=0.12, size=(CATS, dim)))])
    hashes = [f"{i:032x}" for i in range(N + CATS)]
    rows = [{"path": f"/p/{'cat' if i >= N else 'other'}/{i}.jpg", "root": "/p", "size": 1, "mtime_ns": 1,
             "hash": hashes[i], "width": 4, "height": 3, "taken_at": i, "status": "ok"} for i in range(N + CATS)]
    catalog = Catalog(tmp_path / "catalog")
    catalog.commit(rows, space, hashes, vectors).result()
    encoder = Encoder(tiny_stored)
    yield Searcher(catalog, encoder), c, rng, catalog, encoder
    catalog.close()


def test_a_search_shows_what_stands_out_and_says_when_nothing_does(cats):
    searcher, c, rng, *_ = cats
    everything = searcher.search_vector(c, k=N + CATS)
    assert len(everything) == N + CATS  # without the cut: the whole library, ranked
    hits = searcher.search_vector(c, k=N + CATS, cut=True)
    assert not hits.absent
    assert {h.path for h in hits if "/cat/" in h.path} == {f"/p/cat/{i}.jpg" for i in range(N, N + CATS)}
    # The tiny model's vectors have few dimensions, so unrelated photos scatter widely; still, 98% are cut.
    assert len(hits) - CATS <= N * 0.02, "the unrelated photos are cut"
    # Pages of the cut answer end where it ends.
    pages = [h.path for o in range(0, 40, 7) for h in searcher.search_vector(c, k=7, offset=o, cut=True)]
    assert pages == [h.path for h in hits]
    # Something that is not in the library: only the closest few, and the answer says so.
    absent = searcher.search_vector(unit(rng.normal(size=len(c))), k=200, cut=True)
    assert absent.absent and len(absent) == ABSENT_SHOW


def test_the_cut_comes_before_a_date_sort(cats, glimpse_home):
    from app.library.session import SearchRequest, _run
    from app.library.search import Filters

    searcher, c, *_ = cats

    searcher.query_vector = lambda terms: c  # the query is the cats' direction itself
    answer = _run(searcher, SearchRequest(text="cats", sort="newest", cut=True, k=50), [], Filters(), True)
    assert [r.taken_at for r in answer.results] == sorted((r.taken_at for r in answer.results), reverse=True)
    assert sum("/cat/" in r.path for r in answer.results) == CATS and len(answer.results) <= CATS + N * 0.02


def test_floor_rules_on_crafted_scores():
    rng = np.random.default_rng(0)
    assert relevance(rng.normal(0.2, 0.02, 20)) is None  # too few photos to tell
    background = rng.normal(0.2, 0.02, 2000)
    assert relevance(background).absent
    # Most of the library matching ("dog" in a dog photographer's library) is still a match.
    many = np.concatenate([rng.normal(0.2, 0.02, 800), rng.normal(0.33, 0.01, 1200)])
    rel = relevance(many)
    assert not rel.absent and (many[800:] >= rel.floor).mean() > 0.95 and (many[:800] >= rel.floor).mean() < 0.01
    # The query's own picture is never "absent", however alike the rest look.
    assert not relevance(np.append(rng.normal(0.9, 0.05, 500).clip(max=0.97), 1.0)).absent
