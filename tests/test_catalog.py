"""The catalog on disk: schema versions and migrations, keys that stay unique, compaction, odd paths."""
from __future__ import annotations

import os

import numpy as np
import pytest

from app.library import catalog as catalog_module
from app.library.catalog import Catalog, CatalogError


def _row(path: str, h: str = "h0", **kw) -> dict:
    return {"path": path, "root": "/r", "size": 1, "mtime_ns": 1, "hash": h, "status": "ok", **kw}


def test_rows_are_keyed_by_path_and_vectors_by_content(tmp_path):
    cat = Catalog(tmp_path / "db")
    v = np.eye(4, dtype=np.float32)[:2]
    cat.commit([_row("/r/a.jpg", "h1"), _row("/r/b.jpg", "h2")], "m", ["h1", "h2"], v).result()
    cat.commit([_row("/r/a.jpg", "h1", width=10)], "m", ["h1"], v[:1]).result()  # the same again
    assert cat.count() == 2 and cat.photo("/r/a.jpg")["width"] == 10
    hashes, vectors = cat.vectors("m")
    assert sorted(hashes) == ["h1", "h2"] and vectors.shape == (2, 4)
    assert cat.vector_table("m").schema.metadata[b"image_space"] == b"m"
    assert cat.vector_table("other") is None  # vectors of another model are another table
    cat.close()
    reopened = Catalog(tmp_path / "db")
    assert reopened.count() == 2 and reopened.schema_version() == catalog_module.SCHEMA_VERSION
    reopened.close()


def test_paths_with_quotes_and_odd_characters(tmp_path):
    cat = Catalog(tmp_path / "db")
    odd = ["/r/it's/a.jpg", "/r/100%/b.jpg", "/r/a_b/c.jpg", "/r/axb/d.jpg", "/r/ü 写真/e.jpg"]
    cat.commit([_row(p) for p in odd] + [{**_row("/o'k/f.jpg"), "root": "/o'k"}]).result()
    assert cat.photo("/r/it's/a.jpg") is not None and cat.photo("/r/a%b/c.jpg") is None
    cat.delete_paths(["/r/it's/a.jpg", "/r/100%/b.jpg", "/r/a_b/c.jpg"]).result()
    assert sorted(r["path"] for r in cat.photos()) == ["/o'k/f.jpg", "/r/axb/d.jpg", "/r/ü 写真/e.jpg"]
    cat.delete_root("/o'k").result()
    assert cat.count() == 2
    cat.close()


def test_a_damaged_catalog_is_reported_clearly(tmp_path):
    cat = Catalog(tmp_path / "db")
    cat.commit([_row("/r/a.jpg")]).result()
    cat.close()
    for manifest in (tmp_path / "db" / "photos.lance" / "_versions").iterdir():
        manifest.write_bytes(b"garbage")
    with pytest.raises(CatalogError, match="is damaged .* build it again"):
        Catalog(tmp_path / "db")


def test_compaction_merges_fragments_and_keeps_every_row(tmp_path):
    cat = Catalog(tmp_path / "db")
    for i in range(30):
        cat.commit([_row(f"/r/{i}.jpg", f"h{i}")], "m", [f"h{i}"], np.ones((1, 4), np.float32)).result()
    before = cat.table("photos").stats()["fragment_stats"]["num_fragments"]
    cat.compact().result()
    after = cat.table("photos").stats()["fragment_stats"]["num_fragments"]
    assert before == 30 and after == 1  # one fragment per commit, merged into one
    assert cat.count() == 30 and len(cat.vectors("m")[0]) == 30
    cat.delete_paths([f"/r/{i}.jpg" for i in range(10)]).result()
    assert cat.sweep_vectors("m").result() == 10 and len(cat.vectors("m")[0]) == 20
    cat.close()


def test_migrations_run_in_order_and_newer_catalogs_are_refused(tmp_path, monkeypatch):
    cat = Catalog(tmp_path / "db")
    cat.commit([_row("/r/a.jpg")]).result()
    cat.close()

    def add_rating(c: Catalog) -> None:  # what a schema change looks like: a new column with a default
        c.table("photos").add_columns({"rating": "cast(0 as int)"})

    current = catalog_module.SCHEMA_VERSION
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(catalog_module.MIGRATIONS, current + 1, add_rating)
    migrated = Catalog(tmp_path / "db")
    assert migrated.schema_version() == current + 1
    assert migrated.table("photos").to_arrow()["rating"].to_pylist() == [0]
    migrated.close()

    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", current)
    with pytest.raises(CatalogError, match="newer Glimpse"):
        Catalog(tmp_path / "db")


def test_file_names_that_are_not_utf8_round_trip(tmp_path):
    from app.library.catalog import db_path, real_path

    root = os.fsdecode(b"/r/caf\xe9")  # a Latin-1 folder name, as Python hands it over
    names = [root + os.fsdecode(b"/f\xe9te.jpg"), root + "/\ufdd0odd.jpg", root + "/plain.jpg",
             root + os.fsdecode(b"/\xff\xfe\x80.jpg"), root + "/ü 写真.jpg"]
    for name in names:
        assert real_path(db_path(name)) == name
    assert db_path(root + "/plain.jpg") != db_path(root + "/\ufdd0plain.jpg")
    cat = Catalog(tmp_path / "db")
    cat.commit([{**_row(p), "root": root} for p in names]).result()
    rows = cat.photos()
    assert sorted(r["path"] for r in rows) == sorted(names) and {r["root"] for r in rows} == {root}
    assert os.fsencode(cat.photo(names[0])["path"]) == b"/r/caf\xe9/f\xe9te.jpg"
    cat.delete_paths(names[:2]).result()
    assert sorted(r["path"] for r in cat.photos()) == sorted(names[2:])
    cat.delete_root(root).result()
    assert cat.count() == 0
    cat.close()


def test_duplicate_rows_left_by_two_writers_are_repaired(tmp_path):
    cat = Catalog(tmp_path / "db")
    v = np.eye(4, dtype=np.float32)[:2]
    cat.commit([_row("/r/a.jpg", "h1"), _row("/r/b.jpg", "h2")], "m", ["h1", "h2"], v).result()
    # What two processes merging at once left behind: the same keys added again.
    cat.table("photos").add(cat.table("photos").to_arrow())
    vectors = cat.vector_table("m")
    vectors.add(vectors.to_arrow().slice(0, 1))
    assert cat.count() == 4 and vectors.count_rows() == 3

    assert cat.repair_duplicates().result() == 3
    assert sorted(r["path"] for r in cat.photos()) == ["/r/a.jpg", "/r/b.jpg"]
    hashes, got = cat.vectors("m")
    assert sorted(hashes) == ["h1", "h2"] and np.allclose(got[hashes.index("h1")], v[0])
    assert cat.repair_duplicates().result() == 0
    cat.close()


def test_a_table_another_process_drops_or_makes_again_is_read_as_it_is_now(tmp_path):
    """The window keeps the catalog open while its indexing child (or `glimpse models use`) switches
    models, which drops the old image space's vectors, and a switch back makes them again. The window
    then reads the table as it is, not through a handle to the one dropped (seen in a user trial as
    "lance error: Not found: …/_versions" when switching back to a model)."""
    import subprocess
    import sys

    from conftest import ROOT

    window = Catalog(tmp_path / "db")
    v = np.eye(4, dtype=np.float32)
    window.commit([_row(f"/r/{i}.jpg", f"h{i}") for i in range(3)], "old", ["h0", "h1", "h2"], v[:3]).result()
    assert len(window.vector_hashes("old")) == 3 and window.vector_table("old") is not None

    def other_process(code: str) -> None:
        run = subprocess.run([sys.executable, "-c", "import numpy as np\nfrom app.library.catalog import Catalog\n"
                              f"c = Catalog({str(tmp_path / 'db')!r})\n" + code + "\nc.close()"],
                             cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr

    other_process("c.drop_space('old').result()")
    assert window.vector_table("old") is None and len(window.vector_hashes("old")) == 0
    hashes, vectors = window.vectors("old")
    assert hashes == [] and vectors.size == 0
    other_process("c.commit([], 'old', ['h1'], np.eye(4, dtype=np.float32)[1:2]).result()")  # made again
    assert window.vector_hashes("old").to_pylist() == ["h1"]
    assert window.vectors("old")[0] == ["h1"]
    window.close()
