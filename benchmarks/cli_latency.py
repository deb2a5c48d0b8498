"""Wall time of the `glimpse` command from launch to exit, against a bare Python.

    python benchmarks/cli_latency.py [-n 7]

Builds its own GLIMPSE_HOME (the tiny test model from tests/tiny.py, ~50 small JPEGs, indexed), then
runs each command N times as a fresh process and reports the median: `python -c pass` (the floor),
`glimpse --version`, `glimpse status` and `glimpse search "a dog"`. Target for a search: <= 1.5 s.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

_TINY = """
import sys
sys.path.insert(0, "tests")
import tiny
tiny.save_folder(tiny.make_model(seed=0), __import__("pathlib").Path(sys.argv[1]))
"""


def _run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600)


def build_home(home: Path, photos: int) -> dict:
    """A home with the tiny model active and `photos` JPEGs indexed; returns the environment to use."""
    env = {**os.environ, "GLIMPSE_HOME": str(home)}
    glimpse = [sys.executable, "-m", "app"]
    _run([sys.executable, "-c", _TINY, str(home / "src" / "tiny-clip")], env)
    _run(glimpse + ["models", "import", str(home / "src" / "tiny-clip")], env)
    sys.path.insert(0, str(ROOT / "tests"))
    import images

    folder = home / "photos"
    folder.mkdir(parents=True)
    for i in range(photos):
        images.photo(160, 120, seed=i).save(folder / f"photo_{i:05d}.jpg", quality=90)
    _run(glimpse + ["folders", "add", str(folder)], env)
    _run(glimpse + ["index"], env)
    return env


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    _run(cmd, env)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=7, help="runs per command (median)")
    ap.add_argument("--photos", type=int, default=50)
    args = ap.parse_args(argv)
    glimpse = [sys.executable, "-m", "app"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "glimpse --version": glimpse + ["--version"],
        "glimpse status": glimpse + ["status"],
        'glimpse search "a dog"': glimpse + ["search", "a dog"],
    }
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"building a home with the tiny model and {args.photos} photos…", flush=True)
        env = build_home(Path(tmp) / "home", args.photos)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the disk cache once
            wall(cmd, env)
        for _ in range(args.n):  # interleaved, so drift on a shared machine hits all alike
            for name, cmd in commands.items():
                times[name].append(wall(cmd, env))
    cores = os.cpu_count()
    lines = [f"cli latency: {args.n} runs each (median, min–max), {args.photos} photos, tiny model, "
             f"{cores} cores, Python {platform.python_version()}",
             f"load average (1 min) before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} "
             "(others' work on the machine slows every line alike)"]
    for name, ts in times.items():
        lines.append(f"{name:<24} {statistics.median(ts):.2f} s   ({min(ts):.2f}–{max(ts):.2f})")
    search = statistics.median(times['glimpse search "a dog"'])
    lines.append(f"target: search <= 1.5 s: {'met' if search <= 1.5 else 'NOT met'}")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cli-latency-cpu{cores}-{datetime.date.today():%Y-%m-%d}.txt"
    out.write_text(text + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
