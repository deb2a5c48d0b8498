"""The settings file shared by several processes: the window, `glimpse folders add`, `glimpse watch`."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, run_glimpse

from app.library.settings import Settings


def _on_disk(glimpse_home) -> dict:
    return json.loads((glimpse_home / "config" / "settings.json").read_text())


def test_closing_the_window_keeps_a_folder_added_meanwhile(glimpse_home, tmp_path):
    window = Settings(glimpse_home / "config" / "settings.json")  # the window, open all along
    window["gui"] = {"theme": "dark"}
    photos = tmp_path / "Photos"
    photos.mkdir()
    r = run_glimpse("folders", "add", str(photos))
    assert r.returncode == 0, r.stderr

    window["gui"] = {"theme": "dark", "geometry": "AAAA"}  # the window closes and saves its state
    assert _on_disk(glimpse_home)["folders"] == [str(photos)]
    assert _on_disk(glimpse_home)["gui"] == {"theme": "dark", "geometry": "AAAA"}
    assert str(photos) in run_glimpse("folders", "list").stdout


def test_reload_follows_another_process(glimpse_home, tmp_path):
    watcher = Settings(glimpse_home / "config" / "settings.json")
    assert watcher.reload() == set()
    photos = tmp_path / "Photos"
    photos.mkdir()
    assert run_glimpse("folders", "add", str(photos)).returncode == 0
    assert watcher.reload() == {"folders"}
    assert watcher["folders"] == [str(photos)]
    assert watcher.reload() == set()  # reported once
    watcher["watch"] = False
    assert watcher.reload() == set()  # its own change is not news to it
    assert Settings(watcher.path)["watch"] is False


_APPEND = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from app.library.settings import Settings
s = Settings(Path(sys.argv[1]))
for i in range(40):
    s.update("folders", lambda roots: list(roots or []) + [sys.argv[2] + str(i)])
    s.update(sys.argv[2], lambda n: (n or 0) + 1)
"""


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "config" / "settings.json"
    code = _APPEND.format(root=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), name]) for name in ("a", "b", "c")]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    data = json.loads(path.read_text())
    assert sorted(data["folders"]) == sorted(f"{n}{i}" for n in "abc" for i in range(40))
    assert (data["a"], data["b"], data["c"]) == (40, 40, 40)


def test_two_processes_adding_folders_at_once_keep_both(glimpse_home, tmp_path):
    folders = [tmp_path / name for name in ("one", "two", "three")]
    for f in folders:
        f.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "app", "folders", "add", str(f)], cwd=ROOT, env=os.environ,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for f in folders]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert sorted(_on_disk(glimpse_home)["folders"]) == sorted(map(str, folders))


def test_a_damaged_file_is_overwritten_by_the_next_change_not_fatal(tmp_path):
    path = tmp_path / "settings.json"
    s = Settings(path)
    s["provider"] = "cpu"
    path.write_text("{ being edited")
    assert s.reload() == set() and s["provider"] == "cpu"  # keeps what it had
    s["watch"] = False
    assert json.loads(path.read_text())["provider"] == "cpu"


def test_removing_a_folder_keeps_one_another_process_added(glimpse_home, tmp_path):
    from app.library.folders import Folders

    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    window = Folders(Settings(glimpse_home / "config" / "settings.json"))
    window.add(str(one))
    assert run_glimpse("folders", "add", str(two)).returncode == 0
    window.remove(str(one))  # the window's view of the list is from before the add
    assert _on_disk(glimpse_home)["folders"] == [str(two)]
