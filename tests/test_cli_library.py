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
    assert "5 indexed (5 encoded, 0 reused" in out and "1 could not be read" in out
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
    assert "0 indexed (0 encoded, 0 reused), 0 removed, 6 unchanged" in _ok(run_glimpse("index"))
    assert _ok(run_glimpse("folders", "exclude", "*.png")).strip() == "Excluded: *.png"
    assert "Excluded: *.bmp (replacing: *.png)" in _ok(run_glimpse("folders", "exclude", "*.bmp"))
    _fails(run_glimpse("folders", "exclude", ""), "an empty pattern excludes nothing")
    assert "nothing besides" in _ok(run_glimpse("folders", "exclude"))

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


def test_arguments_out_of_range_get_one_clear_line(tmp_path):
    _fails(run_glimpse("index", "--batch-size", "0"), "--batch-size: '0' is not a whole number of at least 1", code=2)
    _fails(run_glimpse("index", "--batch-size", "-1"), "--batch-size: '-1' is not a whole number", code=2)
    _fails(run_glimpse("watch", "--quiet-seconds", "-1"), "--quiet-seconds: '-1' is not a number of seconds", code=2)
    _fails(run_glimpse("watch", "--quiet-seconds", "nan"), "--quiet-seconds: 'nan' is not a number", code=2)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello")
    _fails(run_glimpse("folders", "add", str(a_file)), f"{a_file} is a file, not a folder")


def test_queries_that_are_not_images_get_one_clear_line(tmp_path):
    # Parsed before any model is needed: each is refused at once, not searched as text.
    folder = tmp_path / "Holiday"
    folder.mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    _fails(run_glimpse("search", str(folder)), f"{folder} is a folder, not an image")
    _fails(run_glimpse("search", "/etc/passwd"), "/etc/passwd is not an image file")
    _fails(run_glimpse("search", "cat", "--add", str(notes)), f"{notes} is not an image file")
    _fails(run_glimpse("search", "/typo/beach.jpg"), "/typo/beach.jpg: no such image file")
    _fails(run_glimpse("search", "sunset - Pictures/typo.png"), "Pictures/typo.png: no such image file")
    _fails(run_glimpse("search", "9" * 400 + ":cat"), "weight 9999999999… is too large")
    r = run_glimpse("search", "9" * 400 + ":cat")
    assert "RuntimeWarning" not in r.stderr


def test_plain_text_with_slashes_stays_text(tmp_path, monkeypatch):
    from app.library.query import parse

    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()  # a folder named like a word in the query
    cases = ["t-shirt on a sun-lit beach", "cats/dogs", "AC/DC concert", "photos", "IMG_0001.JPG", "1/2 moon"]
    for text in cases:
        assert [(t.kind, t.value) for t in parse(text)] == [("text", text)], text
    photo = make_photos(tmp_path / "Trip - Rome", 1)[0]  # " - " inside a path is not a minus
    assert [(t.kind, t.value) for t in parse(str(photo))] == [("image", str(photo))]
    other = make_photos(tmp_path / "Rome", 1)[0]
    assert [(t.kind, t.weight) for t in parse(f"2:{other} + sea")] == [("image", 2.0), ("text", 1.0)]


def test_search_far_dates_and_a_closed_pipe(indexed_by_cli):
    import subprocess
    import sys

    from conftest import ROOT

    hits = json.loads(_ok(run_glimpse("search", "cat", "--before", "9999-12-31", "--json")))
    assert len(hits) == 3
    assert "No results" in _ok(run_glimpse("search", "cat", "--after", "9999-12-31"))
    assert len(json.loads(_ok(run_glimpse("search", "cat", "--after", "0001-01-01", "--json")))) == 3

    # `glimpse search … | head -1`: the reader is gone before the results come; nothing on stderr.
    p = subprocess.Popen([sys.executable, "-m", "app", "search", "cat"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 1 and err == "", err


def _tiny_disk(where, size: str, request) -> None:
    """A small tmpfs mounted at `where` (root on Linux only), unmounted after the test."""
    import shutil
    import subprocess
    import sys

    import pytest

    if not sys.platform.startswith("linux") or not shutil.which("mount"):
        pytest.skip("a full disk is made with a tmpfs mount, which needs Linux")
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount rights): {r.stderr.strip()}")
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(where)], capture_output=True))


def test_a_full_disk_is_one_line_naming_the_folder(library, tmp_path, glimpse_home, request):
    library.close()
    photos = tmp_path / "Photos"
    make_photos(photos, 40, size=(320, 240))
    _ok(run_glimpse("folders", "add", str(photos)))
    catalog = glimpse_home / "data" / "catalog"
    _tiny_disk(catalog, "64k", request)
    _fails(run_glimpse("index"), f"no space left on {catalog} (the catalog); free some space and run "
                                 "`glimpse index` again")
    assert "model" in _ok(run_glimpse("status"))  # the catalog still opens: nothing was lost

    config = glimpse_home / "config"
    before = (config / "settings.json").read_text()
    _tiny_disk(config, "16k", request)
    (config / "settings.json").write_text(before)
    try:
        (config / "filler").write_bytes(b"\0" * 64 * 1024)
    except OSError:
        pass  # the disk is full now
    (tmp_path / "More").mkdir()
    _fails(run_glimpse("folders", "add", str(tmp_path / "More")), f"no space left on {config} (the settings)")
    assert (config / "settings.json").read_text() == before  # nothing was lost


def test_status_says_identical_files_share_a_vector(library, tmp_path):
    """Fewer vectors than photos must not read as photos missing (a user saw "174 photos (159 vectors)")."""
    import shutil

    photos = tmp_path / "photos"
    paths = make_photos(photos, 3)
    shutil.copy(paths[0], photos / "copy of the first.jpg")
    library.folders.add(str(photos))
    library.update()
    out = _ok(run_glimpse("status"))
    assert "photos      4  (0 could not be read)" in out
    assert f"{library.models.active_id}  (3 vectors for 4 photos: identical files share one)" in out


def test_search_json_keeps_a_name_that_is_not_utf8_openable(library, tmp_path):
    """Strict JSON (no lone surrogates) with the exact bytes of such a name alongside, in base64."""
    import base64
    import os

    library.close()
    photos = tmp_path / "Photos"
    first, second = make_photos(photos, 2)
    odd = os.path.join(os.fsencode(photos), b"\xff.jpg")
    os.rename(first, odd)
    for args in (("folders", "add", str(photos)), ("index",)):
        _ok(run_glimpse(*args))
    out = _ok(run_glimpse("search", "a photo", "--json"))
    out.encode("utf-8")  # no lone surrogate reached the text
    hits = {h["path"]: h for h in json.loads(out, strict=True)}
    assert set(hits) == {str(photos / "\ufffd.jpg"), str(second)}
    for h in hits.values():
        h["path"].encode("utf-8")
    assert "path_bytes" not in hits[str(second)]
    raw = base64.b64decode(hits[str(photos / "\ufffd.jpg")]["path_bytes"])
    assert raw == odd and os.path.exists(raw)
