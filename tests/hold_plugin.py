"""Test only: holds the window's indexing process where a test needs it to be slow.

Loaded by that process through its test hook (`GLIMPSE_TEST_DECODER_PLUGIN=hold_plugin`, with this folder
on PYTHONPATH). Right after the process sends its first progress of the stage `GLIMPSE_TEST_HOLD_AT`
begins with, it stops itself (SIGSTOP), having written its pid to `GLIMPSE_TEST_HOLD_PID`; the test sends
SIGCONT to let it go on. Only the first such process holds (the pid file is there after it)."""
from __future__ import annotations

import os
import signal
import sys

_main = sys.modules["__main__"]  # app.tasks.index_child, run with -m
_emit = _main.emit


def _emit_then_hold(event: dict) -> None:
    pid_file = os.environ["GLIMPSE_TEST_HOLD_PID"]
    hold = (event.get("event") == "progress" and str(event.get("stage", "")).startswith(os.environ["GLIMPSE_TEST_HOLD_AT"])
            and not os.path.exists(pid_file))
    if hold:
        with open(pid_file + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
    _emit(event)
    if hold:
        os.kill(os.getpid(), signal.SIGSTOP)


_main.emit = _emit_then_hold
