"""Browsing a library of 100,000 photos: the first screen, each page as scrolling fetches it, and the
longest GUI-thread stall while flicking through the justified grid.

    python benchmarks/browse_scroll.py [--photos 100000] [--screens 300]

A real catalog on disk holds `--photos` photos (random vectors, shapes of four kinds, dates over ten
years: month headers throughout), read by the real `Searcher`; the real grid (`ResultsView`, justified
rows, month headers) and `ResultsModel` page through it as the window does (a first page of `PAGE`,
then `BROWSE_PAGE` each time the view reaches the end). Thumbnails come from a handful of 256 px files (their making is measured by
gui_responsiveness.py). Reported: the browse answer for the first page (worker thread), the time to lay
out each appended page (GUI thread), one repaint, and the longest stall seen by a 5 ms timer probe while
the view moves one screen every 16 ms (a flick at 60 frames a second) for `--screens` screens.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def catalog(home: Path, n: int):
    import numpy as np

    import tiny
    from app.library.library import Library
    from model.obtain import import_path

    lib = Library()
    lib.models.use(import_path(lib.models.store, tiny.save_folder(tiny.make_model(seed=0), home / "src"), name="t").id)
    model = lib.models.active()
    rng = np.random.default_rng(0)
    shapes = [(4032, 3024), (3024, 4032), (4000, 2250), (3000, 3000)]
    hashes = [f"{i:032x}" for i in range(n)]
    start = 1_400_000_000
    rows = [{"path": f"/photos/{i // 1000:03d}/IMG_{i:06d}.jpg", "root": "/photos", "size": 1, "mtime_ns": 1,
             "hash": hashes[i], "width": shapes[i % 4][0], "height": shapes[i % 4][1],
             "taken_at": start + int(rng.integers(0, 10 * 365 * 86400)), "status": "ok"} for i in range(n)]
    vectors = rng.normal(size=(n, model.embed_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lib.catalog.commit(rows, model.image_space, hashes, vectors).result()
    return lib


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--screens", type=int, default=300)
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="glimpse-browse-"))
    os.environ["GLIMPSE_HOME"] = str(home / "home")
    from PySide6.QtWidgets import QApplication

    import images
    from app.gui.grid import ResultsView
    from app.gui.results import ResultsModel
    from app.gui.thumbs import ThumbnailLoader
    from app.gui.window import PAGE
    from app.library.session import BROWSE_PAGE, SearchRequest, answer
    from probe import StallProbe

    t = time.perf_counter()
    lib = catalog(home, args.photos)
    print(f"# python benchmarks/browse_scroll.py --photos {args.photos} --screens {args.screens}"
          f"   (load {os.getloadavg()[0]:.1f}; catalog made in {time.perf_counter() - t:.0f} s)")
    thumbs = []
    for i, size in enumerate([(256, 192), (192, 256), (256, 144), (256, 256)]):
        thumbs.append(str(home / f"t{i}.jpg"))
        images.photo(*size, seed=i).save(thumbs[-1], quality=85)
    app = QApplication.instance() or QApplication([])
    loader = ThumbnailLoader()
    loader.set_source(lambda path: thumbs[int(path[-10:-4]) % 4])
    model = ResultsModel(loader)
    view = ResultsView()
    view.resize(1440, 860)
    view.setModel(model)
    view.set_grouped(True)
    view.show()

    def page(offset: int):  # as the window's session asks: a first page, then bigger ones
        return answer(lib, SearchRequest(browse=True, offset=offset, k=BROWSE_PAGE if offset else PAGE))

    t = time.perf_counter()
    first = page(0)
    first_ms = (time.perf_counter() - t) * 1000
    model.set_results(first.results, first.more)
    pages, lays = [], []

    from concurrent.futures import ThreadPoolExecutor

    from PySide6.QtCore import QObject, Signal

    class Relay(QObject):
        done = Signal(object)

    relay, pool = Relay(), ThreadPoolExecutor(1)

    def read(offset: int):  # a worker, as the window's backend
        t0 = time.perf_counter()
        a = page(offset)
        pages.append((time.perf_counter() - t0) * 1000)
        relay.done.emit(a)

    def appended(a) -> None:  # the GUI thread
        t1 = time.perf_counter()
        model.append(a.results, a.more)
        lays.append((time.perf_counter() - t1) * 1000)

    relay.done.connect(appended)
    model.more_wanted.connect(lambda: pool.submit(read, model.rowCount()))
    bar = view.verticalScrollBar()
    paints = []
    probe = StallProbe().start()
    for screen in range(args.screens):
        bar.setValue(bar.value() + view.viewport().height())
        t = time.perf_counter()
        view.viewport().repaint()
        paints.append((time.perf_counter() - t) * 1000)
        end = time.perf_counter() + 0.016
        while time.perf_counter() < end:
            app.processEvents()
    longest = probe.stop()
    paints.sort()
    print(f"{args.photos:,} photos; first page of {PAGE} in {first_ms:.0f} ms (worker thread)")
    print(f"flicked {args.screens} screens (1440x860) at 60/s: {model.rowCount():,} photos laid out in "
          f"{len(view.layout_.rows):,} rows under {len(view.layout_.headers)} month headers")
    if pages:
        print(f"each page read: median {statistics.median(pages):.0f} ms (worker);"
              f" laid out: median {statistics.median(lays):.1f} ms, worst {max(lays):.1f} ms (GUI thread)")
    print(f"repaint p50 / p95: {statistics.median(paints):.1f} / {paints[int(0.95 * (len(paints) - 1))]:.1f} ms")
    print(f"longest GUI-thread stall {longest:.1f} ms (target <= 50 ms; stalls over 20 ms: {len(probe.stalls)})")
    full = time.perf_counter()
    view.layout_.lay(*view._items())
    print(f"laying out all {model.rowCount():,} loaded photos at once (a resize): "
          f"{(time.perf_counter() - full) * 1000:.0f} ms")
    pool.shutdown()
    loader.close()
    lib.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
