"""A timer probe for the GUI thread's responsiveness: the longest time the event loop did not run.

A timer asks to fire every `interval_ms`; any extra delay between two ticks is time the GUI thread was
busy elsewhere (a stall the user would feel as a frozen window). Used by tests and benchmarks.
"""
from __future__ import annotations

import gc
import time

from PySide6.QtCore import QObject, Qt, QTimer


class StallProbe(QObject):
    def __init__(self, interval_ms: int = 5, parent: QObject | None = None):
        super().__init__(parent)
        self.interval = interval_ms / 1000
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.longest_ms = 0.0
        self.ticks = 0
        self.stalls: list[tuple[float, float]] = []  # (seconds since start, ms) of stalls over 20 ms
        self._t0 = time.perf_counter()
        self._last: float | None = None
        # Python's own collections of the oldest generation, (seconds since start, ms): a stall that
        # matches one is the garbage collector (in a test process that has built up a large heap).
        self.collections: list[tuple[float, float]] = []
        self._gc_started: float | None = None

    def start(self) -> "StallProbe":
        self._last = self._t0 = time.perf_counter()
        gc.callbacks.append(self._gc)
        self.timer.start()
        return self

    def stop(self) -> float:
        self._tick()  # a stall that lasts until now counts too
        self.timer.stop()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        return self.longest_ms

    def _gc(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        elif self._gc_started is not None:
            self.collections.append((round(self._gc_started - self._t0, 3), round((now - self._gc_started) * 1000, 1)))
            self._gc_started = None

    def report(self) -> str:
        """The stalls, and the full collections (for a failure's message)."""
        return f"stalls {self.stalls}; full garbage collections {self.collections}"

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            stall = (now - self._last - self.interval) * 1000
            self.longest_ms = max(self.longest_ms, stall)
            if stall > 20:
                self.stalls.append((round(self._last - self._t0, 3), round(stall, 1)))
        self._last = now
        self.ticks += 1
