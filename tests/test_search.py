"""Searching: text, image files, "similar to", combined queries, filters, paging, and the ANN index."""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pytest
from PIL import Image

import images
from app.library.catalog import Catalog
from app.library.query import QueryError, Term, parse
from app.library.search import Filters, Searcher
from conftest import make_photos


@pytest.fixture
def indexed(library, tmp_path):
    root = tmp_path / "photos"
    make_photos(root / "2019", 6, start=0)
    make_photos(root / "2023", 6, start=100)
    for i, p in enumerate(sorted(root.rglob("*.jpg"))):
        year = 2019 if "2019" in str(p) else 2023
        t = dt.datetime(year, 6, 1 + i % 6, 12).timestamp()
        os.utime(p, (t, t))
    library.folders.add(str(root))
    library.update()
    return library, root


def test_parse_combined_queries(tmp_path):
    images.photo(32, 32).save(tmp_path / "q.jpg")
    assert parse("cat + snow - indoor") == [Term("text", "cat"), Term("text", "snow"), Term("text", "indoor", -1.0)]
    assert parse("2:cat", add=["0.5:snow"], sub=["indoor"]) == [
        Term("text", "cat", 2.0), Term("text", "snow", 0.5), Term("text", "indoor", -1.0)]
    assert parse("t-shirt on a sun-lit beach") == [Term("text", "t-shirt on a sun-lit beach")]
    assert parse(str(tmp_path / "q.jpg") + " + at night") == [Term("image", str(tmp_path / "q.jpg")),
                                                              Term("text", "at night")]
    with pytest.raises(QueryError, match="nothing to search"):
        parse("  ")
    with pytest.raises(QueryError, match="not subtracted"):
        parse("", sub=["cats"])


def test_text_image_and_similar_queries(indexed):
    library, root = indexed
    searcher = library.searcher()
    hits = searcher.search(parse("a photo of a dog"), k=5)
    assert len(hits) == 5 and all(h.path.startswith(str(root)) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.size > 0 and h.taken_at > 0 for h in hits)

    target = sorted(root.rglob("*.jpg"))[3]
    # A near-duplicate (re-encoded smaller, slightly brightened) finds the original first.
    near = Image.open(target).resize((120, 90)).point(lambda v: min(255, v + 8))
    near.save(root.parent / "near.jpg", quality=70)
    hits = searcher.search(parse(str(root.parent / "near.jpg")), k=3)
    assert hits[0].path == str(target)
    similar = searcher.search([Term("similar", str(target))], k=3)
    assert similar[0].path == str(target) and similar[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(QueryError, match="not in the index"):
        searcher.search([Term("similar", str(root / "nope.jpg"))])


def test_combined_query_is_the_weighted_sum(indexed):
    library, _ = indexed
    searcher = library.searcher()
    enc = library.encoder()
    cat, snow, indoor = enc.encode_texts(["cat", "snow", "indoor"])
    expected = 2 * cat + snow - indoor
    expected /= np.linalg.norm(expected)
    got = searcher.query_vector(parse("2:cat + snow - indoor"))
    assert np.allclose(got, expected, atol=1e-5)
    assert [h.path for h in searcher.search(parse("2:cat", add=["snow"], sub=["indoor"]), k=12)] == \
        [h.path for h in searcher.search_vector(expected, k=12)]


def test_filters_and_paging(indexed):
    library, root = indexed
    searcher = library.searcher()
    q = searcher.query_vector(parse("mountains"))
    everything = searcher.search_vector(q, k=100)
    assert len(everything) == 12
    pages = [searcher.search_vector(q, k=5, offset=o) for o in (0, 5, 10)]
    assert [h.path for page in pages for h in page] == [h.path for h in everything]
    in_2019 = searcher.search_vector(q, k=100, filters=Filters.dates(folder=str(root / "2019")))
    assert len(in_2019) == 6 and all("/2019/" in h.path for h in in_2019)
    summer_2023 = searcher.search_vector(q, k=100, filters=Filters.dates("2023-01-01", "2023-06-03"))
    assert {h.taken.year for h in summer_2023} == {2023} and len(summer_2023) == 3
    assert all(h.taken.date() <= dt.date(2023, 6, 3) for h in summer_2023)
    with pytest.raises(QueryError, match="not a date"):
        Filters.dates("last summer")


def test_search_sees_changes_without_a_restart(indexed):
    library, root = indexed
    searcher = library.searcher()
    q = searcher.query_vector(parse("a lake"))
    assert len(searcher.search_vector(q, k=100)) == 12
    cached = searcher._cache.matrix.copy()
    make_photos(root / "new", 2, start=500)
    library.update()
    assert len(searcher.search_vector(q, k=100)) == 14
    # Only the two new vectors were read; the rest of the cache is untouched.
    assert len(searcher._cache) == 14 and np.array_equal(searcher._cache.matrix[:12], cached)
    # The window answers from what it has while the change loads in the background.
    (root / "new" / "photo_00500.jpg").unlink()
    library.update()
    assert len(searcher.search_vector(q, k=100, fresh=False)) == 14
    searcher._refreshing.join(30)
    assert len(searcher.search_vector(q, k=100, fresh=False)) == 13


def _clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(8, n // 200), dim))
    x = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.6, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ann_recall_against_exact(tmp_path, tiny_stored):
    """Past the exact limit the ANN index answers; its recall@10 against exact search is at least 0.95."""
    from model.runtime import Encoder

    n, dim = 3000, tiny_stored.embed_dim
    vectors = _clustered(n, dim)
    hashes = [f"{i:032x}" for i in range(n)]
    catalog = Catalog(tmp_path / "catalog")
    rows = [{"path": f"/p/{i}.jpg", "root": "/p", "size": 1, "mtime_ns": 1, "hash": hashes[i], "width": 1,
             "height": 1, "taken_at": i, "status": "ok"} for i in range(n)]
    catalog.commit(rows, tiny_stored.id, hashes, vectors).result()
    assert catalog.ensure_ann(tiny_stored.id, 1000).result()
    encoder = Encoder(tiny_stored)
    exact = Searcher(catalog, encoder, exact_limit=10_000)
    ann = Searcher(catalog, encoder, exact_limit=1000)
    assert not exact.uses_ann and ann.uses_ann
    queries = _clustered(50, dim, seed=1)
    recall = np.mean([len({h.path for h in exact.search_vector(q, 10)} & {h.path for h in ann.search_vector(q, 10)}) / 10
                      for q in queries])
    assert recall >= 0.95, recall
    # Scores agree with exact ones for the same photos, and filters apply.
    q = queries[0]
    e = {h.path: h.score for h in exact.search_vector(q, 10)}
    assert all(abs(e[h.path] - h.score) < 1e-3 for h in ann.search_vector(q, 10) if h.path in e)
    late = ann.search_vector(q, 10, filters=Filters(after=2500))
    assert len(late) == 10 and all(h.taken_at >= 2500 for h in late)
    catalog.close()


def test_large_change_compacts_and_builds_the_ann_index(library, tmp_path):
    """After 500+ changes the library compacts the catalog, and past the exact limit it builds the ANN index."""
    library.settings["exact_search_limit"] = 300
    root = tmp_path / "photos"
    make_photos(root, 520, size=(48, 36))
    library.folders.add(str(root))
    library.update(batch_size=64)
    assert library.catalog.table("photos").stats()["fragment_stats"]["num_fragments"] == 1
    searcher = library.searcher()
    assert searcher.uses_ann and library.catalog.vector_table(library.models.active_id).list_indices()
    target = sorted(root.glob("*.jpg"))[7]
    assert searcher.search([Term("similar", str(target))], k=1)[0].path == str(target)
