"""The library commands as a new user runs them: folders, index, search, status, errors, bad arguments."""
from __future__ import annotations

import json

from conftest import make_photos, run_glimpse


def _ok(r):
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return r.stdout


def _fails(r, text: str, code: int = 1):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("glimpse: ") and text in lines[0], r.stderr


def test_add_index_search_status_errors_remove(library, tmp_path):
    library.close()
    photos = tmp_path / "My Photos"
    paths = make_photos(photos, 5)
    (photos / "broken.jpg").write_text("oops")
    _fails(run_glimpse("index"), "no folders to index")
    assert "Watching" in _ok(run_glimpse("folders", "add", str(photos)))
    out = _ok(run_glimpse("folders", "list"))
    assert "0 photos" in out and str(photos) in out

    out = _ok(run_glimpse("index"))
    assert "6 indexed (5 encoded, 0 reused" in out and "1 could not be read" in out
    out = _ok(run_glimpse("search", "a sunny beach", "-k", "3"))
    assert len(out.strip().splitlines()) == 3 and str(photos) in out
    hits = json.loads(_ok(run_glimpse("search", str(paths[2]), "--json", "-k", "2")))
    assert hits[0]["path"] == str(paths[2]) and hits[0]["score"] > 0.999
    assert set(hits[0]) == {"path", "score", "taken_at", "size", "width", "height"}
    hits = json.loads(_ok(run_glimpse("search", "--similar", str(paths[1]), "--sub", "blurry", "--json")))
    assert hits[0]["path"] == str(paths[1]) and len(hits) == 5
    page2 = json.loads(_ok(run_glimpse("search", "tree", "--json", "-k", "2", "--offset", "2")))
    everything = json.loads(_ok(run_glimpse("search", "tree", "--json")))
    assert [h["path"] for h in page2] == [h["path"] for h in everything[2:4]]

    out = _ok(run_glimpse("status"))
    assert "photos      5  (1 could not be read)" in out and f"{library.models.active_id}  (5 vectors)" in out
    assert "database" in out
    assert f"{photos / 'broken.jpg'}: not an image" in _ok(run_glimpse("errors"))
    assert "5 unchanged" in _ok(run_glimpse("index")) or "6 unchanged" in _ok(run_glimpse("index"))

    assert "Removed" in _ok(run_glimpse("folders", "remove", str(photos)))
    assert "No photos indexed yet" in _ok(run_glimpse("search", "anything"))
    assert len(list(photos.iterdir())) == 6  # the files are still there


def test_search_without_a_model_says_how_to_get_one():
    _fails(run_glimpse("search", "cats"), "No model yet")


def test_bad_arguments_get_one_clear_line(library, tmp_path):
    library.close()
    _fails(run_glimpse("folders", "add", str(tmp_path / "missing")), "no such folder")
    _fails(run_glimpse("folders", "remove", str(tmp_path)), "not a watched folder")
    _fails(run_glimpse("search", "cats", "--after", "yesterday"), "not a date")
    _fails(run_glimpse("search", "--similar", str(tmp_path / "x.jpg")), "not in the index")
    _fails(run_glimpse("search", "cats", "-k", "0"), "k must be positive")
    _fails(run_glimpse("watch"), "no folders to watch")
    _fails(run_glimpse("folders"), "required: ACTION", code=2)
