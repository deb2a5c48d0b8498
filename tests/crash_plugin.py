"""Test only: Pillow plugins that behave like hostile files in a native decoder.

Imported by the window's indexing process through its test hook (`GLIMPSE_TEST_DECODER_PLUGIN=crash_plugin`,
with this folder on PYTHONPATH). A file that starts with `CRASH` aborts the process when opened, as a
crash in libjpeg or libheif would; a file that starts with `SLOW` is a real image (raw RGB after a small
header) that takes `SLOW_S` to open. A crash file written with `wait_for_slow` first waits (up to
`WAIT_S`) until a slow file is being opened in the same process, so that two files are surely in the
decoders when it crashes: the innocent one must still be indexed. A file that starts with `HANG` never
opens: it says so on stderr (the window's index.log) and sleeps forever, as a decoder stuck in a loop would.

With `GPU_ON_CPU` set in the environment, the process indexes through the GPU pipeline's code on the CPU
device (nvImageCodec's CPU decoder, as tests/test_gpu_pipeline.py runs it), and a JPEG whose comment is
`GPU_CRASH` aborts it when it is in a batch that decoder gets (Pillow opens it well): a crash in nvImageCodec.
"""
from __future__ import annotations

import os
import struct
import sys
import threading
import time

import numpy as np
from PIL import Image, ImageFile

CRASH = b"GLIMPSE-CRASH\n"
SLOW = b"GLIMPSE-SLOW\n"
HANG = b"GLIMPSE-HANG\n"
HANGING = "crash_plugin: hanging on"  # written to stderr each time a hang file is opened
GPU_ON_CPU = "GLIMPSE_TEST_GPU_ON_CPU"
GPU_CRASH = b"GLIMPSE-GPU-CRASH"
SLOW_S = 3.0
WAIT_S = 5.0
_slow_opening = threading.Event()  # a slow file has started to open in this process


def _abort() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file for a crash made on purpose
    except (ImportError, ValueError, OSError):
        pass
    os.abort()


class CrashFile(ImageFile.ImageFile):
    format = "GLIMPSECRASH"
    format_description = "aborts the process (test)"

    def _open(self) -> None:
        self.fp.read(len(CRASH))
        if self.fp.read(1) == b"W":
            _slow_opening.wait(WAIT_S)
        _abort()


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


class HangFile(ImageFile.ImageFile):
    format = "GLIMPSEHANG"
    format_description = "never opens (test)"

    def _open(self) -> None:
        print(HANGING, self.fp.name if hasattr(self.fp, "name") else "?", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)


Image.register_open(CrashFile.format, CrashFile, lambda prefix: prefix.startswith(CRASH))
Image.register_open(SlowFile.format, SlowFile, lambda prefix: prefix.startswith(SLOW))
Image.register_open(HangFile.format, HangFile, lambda prefix: prefix.startswith(HANG))


def write_crash(path, wait_for_slow: bool = False) -> None:
    with open(path, "wb") as f:
        f.write(CRASH + (b"W" if wait_for_slow else b"N") + os.urandom(64))


def write_slow(path, width: int = 160, height: int = 120, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    with open(path, "wb") as f:
        f.write(SLOW + struct.pack("<II", width, height) + pixels.tobytes())


def write_hang(path) -> None:
    with open(path, "wb") as f:
        f.write(HANG + os.urandom(64))


def write_gpu_crash(path, seed: int = 0) -> None:
    """A good JPEG that aborts the GPU pipeline's decoder (with GPU_ON_CPU set in the process)."""
    import images

    images.photo(160, 120, seed=seed).save(path, "JPEG", quality=90, comment=GPU_CRASH)


def _gpu_on_cpu() -> None:
    from model import gpu_pipeline

    pipelines: dict = {}

    def pipeline_for(model, provider: str = "auto"):
        if model.image_space not in pipelines:
            pipelines[model.image_space] = gpu_pipeline.GpuPipeline(model, device="cpu", fp16=False, workers=2)
        return pipelines[model.image_space], None

    decode = gpu_pipeline.GpuPipeline._decode_on_device

    def decode_on_device(self, sources, jpegs, out):
        if any(GPU_CRASH in bytes(sources[i]) for i in jpegs):
            _abort()
        return decode(self, sources, jpegs, out)

    gpu_pipeline.pipeline_for = pipeline_for
    gpu_pipeline.GpuPipeline._decode_on_device = decode_on_device


if os.environ.get(GPU_ON_CPU):
    _gpu_on_cpu()
