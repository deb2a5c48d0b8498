"""Test only: Pillow plugins that behave like hostile files in a native decoder.

Imported by the window's indexing process through its test hook (`GLIMPSE_TEST_DECODER_PLUGIN=crash_plugin`,
with this folder on PYTHONPATH). A file that starts with `CRASH` aborts the process when opened, as a
crash in libjpeg or libheif would; a file that starts with `SLOW` is a real image (raw RGB after a small
header) that takes `SLOW_S` to open. A crash file written with `wait_for_slow` first waits (up to
`WAIT_S`) until a slow file is being opened in the same process, so that two files are surely in the
decoders when it crashes: the innocent one must still be indexed.
"""
from __future__ import annotations

import os
import struct
import threading
import time

import numpy as np
from PIL import Image, ImageFile

CRASH = b"GLIMPSE-CRASH\n"
SLOW = b"GLIMPSE-SLOW\n"
SLOW_S = 3.0
WAIT_S = 5.0
_slow_opening = threading.Event()  # a slow file has started to open in this process


class CrashFile(ImageFile.ImageFile):
    format = "GLIMPSECRASH"
    format_description = "aborts the process (test)"

    def _open(self) -> None:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a crash made on purpose
        except (ImportError, ValueError, OSError):
            pass
        self.fp.read(len(CRASH))
        if self.fp.read(1) == b"W":
            _slow_opening.wait(WAIT_S)
        os.abort()


class SlowFile(ImageFile.ImageFile):
    format = "GLIMPSESLOW"
    format_description = "a raw RGB image that is slow to open (test)"

    def _open(self) -> None:
        self.fp.read(len(SLOW))
        width, height = struct.unpack("<II", self.fp.read(8))
        _slow_opening.set()
        time.sleep(SLOW_S)
        self._mode = "RGB"
        self._size = (width, height)
        self.tile = [ImageFile._Tile("raw", (0, 0, width, height), len(SLOW) + 8, ("RGB", 0, 1))]


Image.register_open(CrashFile.format, CrashFile, lambda prefix: prefix.startswith(CRASH))
Image.register_open(SlowFile.format, SlowFile, lambda prefix: prefix.startswith(SLOW))


def write_crash(path, wait_for_slow: bool = False) -> None:
    with open(path, "wb") as f:
        f.write(CRASH + (b"W" if wait_for_slow else b"N") + os.urandom(64))


def write_slow(path, width: int = 160, height: int = 120, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    with open(path, "wb") as f:
        f.write(SLOW + struct.pack("<II", width, height) + pixels.tobytes())
