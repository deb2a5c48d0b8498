"""What the use cases that run a child process share (fine-tuning, the window's indexing)."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def child_env() -> dict:
    """The child finds this copy of Glimpse's packages even when it is not installed."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop(child: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM (the child stops without finishing its work), then SIGKILL after `grace` seconds."""
    if child.poll() is not None:
        return
    try:
        child.send_signal(signal.SIGTERM)
        child.wait(grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    except ProcessLookupError:
        pass


def open_log(path: Path, limit: int = 1 << 20):
    """The child's stderr, appended to `path`; past `limit` bytes the old log becomes `path`.old."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > limit:
            os.replace(path, path.with_name(path.name + ".old"))
    except OSError:
        pass
    return open(path, "ab")
