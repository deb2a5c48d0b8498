"""One window per library: a second `glimpse` brings the first forward and exits (real processes, real
local sockets)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from PySide6.QtCore import Qt

from app.gui.main import bring_forward
from app.gui.single import Instance, forward, server_name
from app.library.paths import Paths
from conftest import ROOT, wait_for


def _launch(extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_second_launch_hands_over_to_the_first_and_exits(glimpse_home, qapp):
    first = _launch()
    try:
        name = server_name(Paths.default().data)
        wait_for(lambda: first.poll() is not None or forward(name), 90, "the first window to listen")
        assert first.poll() is None, first.communicate()[1]
        started = time.monotonic()
        second = _launch()
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert "already open" in out and "Traceback" not in err
        assert time.monotonic() - started < 30
        assert first.poll() is None, "the first window is still open"
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_the_first_window_is_brought_forward(glimpse_home, qtbot):
    from app.gui.window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.setWindowState(Qt.WindowState.WindowMinimized)
    instance = Instance(server_name(Paths.default().data), window)
    assert instance.listen()
    instance.activated.connect(lambda: bring_forward(window))
    try:
        with qtbot.waitSignal(instance.activated, timeout=60_000):
            second = _launch()
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0 and "already open" in out
        assert not window.windowState() & Qt.WindowState.WindowMinimized
        assert window.isVisible()
    finally:
        instance.close()


def test_another_library_opens_its_own_window(glimpse_home, tmp_path, qapp):
    instance = Instance(server_name(Paths.default().data))
    assert instance.listen()
    try:
        assert server_name(tmp_path / "other" / "data") != instance.name
        other = _launch({"GLIMPSE_HOME": str(tmp_path / "other")})
        name = server_name(tmp_path / "other" / "data")
        wait_for(lambda: other.poll() is not None or forward(name), 90, "the other library's window")
        assert other.poll() is None, other.communicate()[1]
        other.terminate()
        other.communicate(timeout=30)
    finally:
        instance.close()


_HOLDER = """
import sys, time
from PySide6.QtCore import QCoreApplication
from app.gui.single import Instance
app = QCoreApplication([])
instance = Instance(sys.argv[1])
print("listening" if instance.listen() else "refused", flush=True)
time.sleep(60)
"""


def test_a_crashed_window_does_not_block_the_next_launch(glimpse_home, qapp):
    name = server_name(Paths.default().data)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, name], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "listening"
    os.kill(holder.pid, signal.SIGKILL)  # its socket file stays behind
    holder.wait(10)
    assert not forward(name, timeout_ms=300)
    instance = Instance(name)
    try:
        assert instance.listen(), "the stale name is taken over"
    finally:
        instance.close()
