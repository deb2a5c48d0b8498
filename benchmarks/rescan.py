"""A no-op rescan of 100k unchanged files, against the floor of walking and stat-ing the same tree.

    python benchmarks/rescan.py [-n 100000]

The tree (small real files in 100 folders) and its catalog are made once in benchmarks/.cache. The
rescan compares every file's size and mtime with the catalog and must find nothing to do.
Target: <= 5 s for 100k files.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import CACHE  # noqa: E402


def make_tree(n: int) -> tuple[Path, Path]:
    from app.library.catalog import Catalog

    root = CACHE / f"rescan-{n}"
    photos, db = root / "photos", root / "catalog"
    if (root / "done").exists():
        return photos, db
    print(f"making {n} files and their catalog (once)…", flush=True)
    payload = b"\xff\xd8\xff\xe0" + os.urandom(700)
    catalog = Catalog(db)
    rows = []
    for i in range(n):
        folder = photos / f"{i % 100:03d}"
        if i < 100:
            folder.mkdir(parents=True, exist_ok=True)
        p = folder / f"IMG_{i:06d}.jpg"
        p.write_bytes(payload)
        st = p.stat()
        rows.append({"path": str(p), "root": str(photos), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                     "hash": "0" * 32, "status": "ok", "taken_at": 0})
    catalog.commit(rows, "bench", ["0" * 32], np.ones((1, 8), np.float32)).result()
    catalog.compact().result()
    catalog.close()
    (root / "done").touch()
    return photos, db


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000)
    args = ap.parse_args(argv)

    from app.library.catalog import Catalog
    from app.library.formats import Exclusions
    from app.library.scanner import plan

    photos, db = make_tree(args.n)

    def floor() -> int:
        count = 0
        for folder, _, files in os.walk(photos):
            for f in files:
                os.stat(os.path.join(folder, f))
                count += 1
        return count

    floor()  # warm the directory cache, as on a machine in use
    t0 = time.perf_counter()
    assert floor() == args.n
    walk_s = time.perf_counter() - t0
    catalog = Catalog(db)
    t0 = time.perf_counter()
    result = plan(catalog, [str(photos)], Exclusions(), "bench")
    scan_s = time.perf_counter() - t0
    catalog.close()
    assert result.unchanged == args.n and not result.todo and not result.deleted, result.changes
    print(f"{args.n} unchanged files")
    print(f"os.walk + stat (floor)   {walk_s:6.2f} s")
    print(f"glimpse no-op rescan     {scan_s:6.2f} s   ratio {scan_s / walk_s:.2f}x the floor (target <= 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
