"""ONNX Runtime encoders: the only code that runs a model on the search and indexing paths.

No torch here. Sessions are created on first use, CUDA execution provider first where a CUDA
driver is present, CPU second. Because a missing CUDA library makes ONNX Runtime fall back to
the CPU silently, the providers a session really got are read back and reported.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import CorruptModel
from .jobs import Cancelled, Control
from .preprocess import PreprocessConfig, batch as preprocess_batch, open_image
from .store import StoredModel
from .tokenizer import Tokenizer, trim_padding

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def cpu_threads() -> int:
    """CPUs this process may run on (its affinity), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cuda_driver_present() -> bool:
    names = {"win32": ["nvcuda.dll"], "darwin": []}.get(sys.platform, ["libcuda.so.1", "libcuda.so"])
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def cuda_missing() -> str | None:
    """Why this computer cannot run models on CUDA, in words; None when it can try."""
    if CUDA not in available_providers():
        return "This ONNX Runtime has no CUDA support (onnxruntime-gpu is not installed)."
    if not cuda_driver_present():
        return "No NVIDIA GPU driver was found on this computer."
    return None


_preloaded = False


def providers_for(preference: str = "auto") -> list:
    """The provider list to ask for. `preference` is 'auto', 'cuda' or 'cpu' (env GLIMPSE_PROVIDER wins)."""
    global _preloaded
    preference = os.environ.get("GLIMPSE_PROVIDER", preference).lower()
    if preference != "cpu" and cuda_missing() is None:
        import onnxruntime as ort

        if not _preloaded and hasattr(ort, "preload_dlls"):
            try:  # CUDA and cuDNN from the nvidia-* wheels, where installed
                ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
            except Exception:
                pass
            _preloaded = True
        return [(CUDA, {"device_id": 0}), CPU]
    return [CPU]


def make_session(path: Path, preference: str = "auto"):
    """An ONNX Runtime session for a model file, with as many threads as this process has CPUs.

    What was measured on 2 shared CPU cores (ViT-B-32, 96 12-MP JPEGs, Indexer, 2 rounds, load 2-4 from
    other work; /tmp experiment recorded in benchmarks/results/index_throughput-cpu2-2026-11-30b.txt):
    1 model thread loses clearly (5.0 and 3.4 images/s against 6.1 with 2); 1 or 3 decoder threads, spinning
    on, batch 16 or 64 all landed within the noise of 2 decoders, no spinning, batch 32, so those stay.
    Graph optimisation saved offline (`optimized_model_filepath`, loaded with optimisation off) saved
    only 65 ms of the visual session's 0.34 s start (20 ms text, 30 ms int8) for a second copy of each
    model on disk (+576 MB for ViT-B-32): not kept."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only: no start-up warnings on the user's terminal
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cpu_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No busy-waiting between batches: the decoders need those cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers_for(preference))
    except Exception as e:  # InvalidProtobuf, Fail, NoSuchFile...
        raise CorruptModel(f"The model file {path.name} of '{path.parent.name}' does not load "
                           f"({str(e).splitlines()[0][:200]}). Remove the model with "
                           f"`glimpse models remove {path.parent.name}` and pull or import it again.") from e


def _normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), np.float32(1e-12))


def device_label(providers: Sequence[str], threads: int | None = None) -> str:
    """The device a session runs on, for people: "CPU, 2 threads", "GPU: NVIDIA H200"."""
    if providers and providers[0] == CUDA:
        from .gpu_pipeline import gpu_name  # the driver's name for it (no torch)

        return f"GPU: {gpu_name()}"
    return f"CPU, {threads or cpu_threads()} threads"


class Encoder:
    """Encodes images and texts with a stored model. Thread-safe; sessions open on first use.

    `int8`: index with the model's int8 image tower (`glimpse models quantize`, see model.quantize) where
    it has one and the image session really runs on the CPU; its vectors share the fp32 tower's image space."""

    def __init__(self, model: StoredModel, provider: str = "auto", int8: bool = False):
        self.model = model
        self.provider = provider
        self.int8 = int8
        self.preprocess: PreprocessConfig = model.preprocess
        self._lock = threading.Lock()
        self._visual = self._textual = None
        self._visual_file: Path | None = None
        self._tokenizer: Tokenizer | None = None
        self._device: str | None = None
        self._local = threading.local()  # this thread's run options (see `stopped_by`)

    @property
    def model_id(self) -> str:
        return self.model.id

    @property
    def embed_dim(self) -> int:
        return self.model.embed_dim

    @property
    def image_space(self) -> str:
        return self.model.image_space

    def _session(self, which: str):
        with self._lock:
            if which == "visual" and self._visual is None:
                self._visual, self._visual_file = self._open_visual()
            if which == "textual" and self._textual is None:
                self._textual = make_session(self.model.textual_path, self.provider)
                self._tokenizer = Tokenizer(self.model.tokenizer_path, self.model.manifest["tokenizer"])
        return self._visual if which == "visual" else self._textual

    def _open_visual(self):
        """The image session and its file. The int8 tower is chosen by where the session really runs: a
        CUDA session that fell back to the CPU (a missing CUDA library) runs int8 too. An int8 file that
        does not load (damaged) leaves the fp32 tower in use: it is optional."""
        int8 = self.model.int8_path if self.int8 else None
        wants_cpu = providers_for(self.provider)[0] == CPU
        if int8 is None or not wants_cpu:
            session = make_session(self.model.visual_path, self.provider)
            if int8 is None or session.get_providers()[0] != CPU:
                return session, self.model.visual_path
        try:
            return make_session(int8, "cpu"), int8
        except CorruptModel:
            return make_session(self.model.visual_path, self.provider), self.model.visual_path

    @property
    def visual_file(self) -> Path:
        """The image tower this encoder runs (opens the image session): the int8 one when asked for, made,
        and the session runs on the CPU."""
        self._session("visual")
        return self._visual_file

    @property
    def image_tower(self) -> str:
        return "int8" if self.visual_file != self.model.visual_path else "fp32"

    def device(self, open_session: bool = True) -> str:
        """Where images are encoded, for people: "CPU, 2 threads", "GPU: NVIDIA H200, decode on CPU".
        With `open_session` False, "" until the image session has been opened by a run."""
        if self._device is None:
            if not open_session and self._visual is None:
                return ""
            session = self._session("visual")
            providers = session.get_providers()
            label = device_label(providers, session.get_session_options().intra_op_num_threads)
            if providers[0] == CUDA:  # this encoder is fed arrays decoded on the CPU (see model.gpu_pipeline)
                self._device = label + ", decode on CPU"
            else:
                self._device = label + (", int8" if self.image_tower == "int8" else "")
        return self._device

    def warm(self, which: str = "textual") -> None:
        """Open a session now (and, for text, load the tokenizer), so the first query does not wait."""
        self._session(which)

    def providers_in_use(self, which: str = "visual") -> list[str]:
        """The providers the session really got (creates the session if needed)."""
        return list(self._session(which).get_providers())

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        self._session("textual")
        return self._tokenizer(list(texts))

    def _run(self, which: str, x: np.ndarray, dtype) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        session = self._session(which)
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=dtype)}
        options = getattr(self._local, "options", None)
        try:
            out = session.run(None, feed, options)
        except Exception:
            if options is not None and options.terminate:
                raise Cancelled("cancelled") from None
            raise
        return _normalize(out[0])

    @contextlib.contextmanager
    def stopped_by(self, control: Control):
        """Within the block, a run on this thread ends within milliseconds of `control` being cancelled
        (raising Cancelled), not when its batch is done: a batch of a large model takes seconds."""
        import onnxruntime as ort

        options = ort.RunOptions()
        self._local.options = options
        try:
            with control.on_cancel(lambda: setattr(options, "terminate", True)):
                yield
        finally:
            self._local.options = None

    def encode_arrays(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed float32 (N, 3, H, W) to L2-normalised float32 (N, D)."""
        return self._run("visual", pixels, np.float32)

    def encode_images(self, images: Sequence) -> np.ndarray:
        """PIL images or paths to L2-normalised float32 (N, D)."""
        pil = [open_image(im, self.preprocess) if isinstance(im, (str, Path)) else im for im in images]
        return self.encode_arrays(preprocess_batch(pil, self.preprocess))

    def encode_tokens(self, tokens: np.ndarray, trim: bool = True) -> np.ndarray:
        """Token ids (N, context) to L2-normalised float32 (N, D)."""
        if trim and self.model.manifest["tokenizer"].get("variable_length"):
            tokens = trim_padding(tokens)  # same vectors, less work: see model.export
        return self._run("textual", tokens, np.int64)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts to L2-normalised float32 (N, D)."""
        return self.encode_tokens(self.tokenize(texts))
