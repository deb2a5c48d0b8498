"""`kill -9` in the middle of indexing, then a resume: no duplicate, no lost row, a database that opens."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.compute as pc

from conftest import ROOT, make_photos, run_glimpse


def test_kill_during_indexing_then_resume(library, tmp_path, glimpse_home):
    root = tmp_path / "photos"
    n = 400
    make_photos(root, n, size=(320, 240))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    library.folders.add(str(root))
    library.close()

    proc = subprocess.Popen([sys.executable, "-m", "app", "index", "--batch-size", "8"], cwd=ROOT,
                            env={**os.environ, "GLIMPSE_HOME": str(glimpse_home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from app.library.catalog import Catalog

    catalog = Catalog(glimpse_home / "data" / "catalog")
    deadline = time.monotonic() + 120
    while catalog.count() == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = catalog.count()
    assert 0 < partial < n + 1, "the kill should land in the middle of indexing"

    r = run_glimpse("index", env={"GLIMPSE_HOME": str(glimpse_home)})
    assert r.returncode == 0, r.stderr
    assert f"removed, {partial} unchanged" in r.stdout  # 0 < partial, checked above

    rows = catalog.photo_columns(["path", "hash", "status"])
    paths = rows["path"].to_pylist()
    assert len(paths) == n + 1 == len(set(paths))
    assert rows.filter(pc.equal(rows["status"], "error"))["path"].to_pylist() == [str(root / "broken.jpg")]
    space = library.models.active().image_space
    ok_hashes = set(rows.filter(pc.equal(rows["status"], "ok"))["hash"].to_pylist())
    vector_hashes = catalog.vector_hashes(space).to_pylist()
    assert len(vector_hashes) == len(set(vector_hashes)), "no duplicate vectors"
    assert ok_hashes <= set(vector_hashes) and len(ok_hashes) == n
    catalog.close()

    r = run_glimpse("index", env={"GLIMPSE_HOME": str(glimpse_home)})
    assert r.returncode == 0 and f"0 indexed (0 encoded, 0 reused), 0 removed, {n + 1} unchanged" in r.stdout
