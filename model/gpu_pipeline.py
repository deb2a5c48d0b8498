"""The GPU indexing pipeline: JPEG bytes -> GPU decode -> resize, crop, normalise on the GPU -> ONNX Runtime.

An optional extra (`pip install glimpse[gpu]`: NVIDIA's nvImageCodec with nvJPEG). JPEGs are decoded in
batches by nvImageCodec (the GPU's hardware JPEG decoder where it has one, else its CUDA decoder), with
their EXIF orientation applied. torch (a dependency already; imported here only inside the functions that
run on the GPU, never on the search path or at start-up) resizes, crops and normalises them on the GPU
exactly as `model.preprocess` does on the CPU: the same sizes, crop offsets, interpolation and mean/std.
The CPU path decodes a large JPEG at a reduced DCT scale (`Image.draft`); here the full decode is
averaged over the same s x s blocks first, which is what that scale computes, so both paths agree
(`tests/test_gpu_pipeline.py` measures it). The batch then goes to ONNX Runtime through IO binding: it
never comes back to the host; only the small output vectors are copied back.

Other formats (HEIC, RAW, PNG, WebP...) arrive already decoded and preprocessed by the CPU decoders
(the indexer's pool); a JPEG the GPU decoder refuses (CMYK, 12-bit, damaged) is decoded by Pillow in
this pipeline's own pool of workers. fp16 is used only when, on the first batch of the run, its
vectors agree with fp32 (cosine >= 0.999, as `benchmarks/gpu_check.py` measured on an H200).

`device="cpu"` runs the same code on the CPU (nvImageCodec's CPU decoder, torch on the CPU, IO binding
to host memory): that is how the tests exercise it on machines without a GPU.
"""
from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.util
import io
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from .imagefile import ImageError, is_raw
from .jobs import Cancelled, Control
from .preprocess import PreprocessConfig, _keep_ratio, _resized_shortest, open_image, to_array
from .runtime import CPU, CUDA, _normalize, cpu_threads, cuda_missing, device_label, make_session
from .store import StoredModel

INSTALL_HINT = "nvImageCodec is not installed (pip install glimpse[gpu])"
FP16_COS_MIN = 0.999
JPEG_MAGIC = b"\xff\xd8\xff"
PIXEL_BUDGET = 256_000_000  # decoded pixels held at once on the CPU device (~770 MB of RGB)
GPU_PIXEL_BUDGET = 2_000_000_000  # on a GPU at most this (6 GB: 128 12 MP photos), and a fifth of free memory

_lock = threading.Lock()
_nvimgcodec = None
_reason_cache: dict[str, str | None] = {}
_pipelines: dict[str, "GpuPipeline"] = {}


# -- can it run here? ---------------------------------------------------------------------------
def _preference(provider: str) -> str:
    return os.environ.get("GLIMPSE_PROVIDER", provider).lower()


def unavailable_reason(provider: str = "auto") -> str | None:
    """None when the GPU pipeline can run here; else why not, in words. Cheap checks first: on a
    computer without an NVIDIA driver, neither torch nor nvImageCodec is imported."""
    if _preference(provider) == "cpu":
        return "the CPU was chosen in the settings (provider: cpu)"
    missing = cuda_missing()
    if missing:
        return missing
    with _lock:
        if "cuda" not in _reason_cache:
            _reason_cache["cuda"] = _device_reason()
        return _reason_cache["cuda"]


def _device_reason() -> str | None:
    try:
        if importlib.util.find_spec("nvidia.nvimgcodec") is None:
            return INSTALL_HINT
    except ImportError:
        return INSTALL_HINT
    try:  # torch is not imported here (doctor and the settings ask this): GpuPipeline checks it
        _decoder("cuda")
    except Exception as e:
        return f"the GPU JPEG decoder does not start ({first_line(e)})"
    return None


@functools.lru_cache(maxsize=1)
def gpu_name() -> str:
    """The first NVIDIA GPU's name, from the driver (no torch); 'NVIDIA GPU' when it cannot be read."""
    try:
        cuda = ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
        device, name = ctypes.c_int(), ctypes.create_string_buffer(256)
        if cuda.cuInit(0) == 0 and cuda.cuDeviceGet(ctypes.byref(device), 0) == 0 \
                and cuda.cuDeviceGetName(name, 256, device) == 0:
            return name.value.decode(errors="replace").strip() or "NVIDIA GPU"
    except (OSError, AttributeError):
        pass
    return "NVIDIA GPU"


def describe(provider: str = "auto") -> str:
    """Where indexing will encode, for people, in the words progress uses (`model.runtime.Encoder.device`):
    "GPU: NVIDIA H200, decode on GPU", "GPU: NVIDIA H200, decode on CPU", "CPU, 2 threads". Why not the
    GPU pipeline: `unavailable_reason`."""
    if unavailable_reason(provider) is None:
        return f"GPU: {gpu_name()}, decode on GPU"
    if cuda_encodes(provider):
        return f"GPU: {gpu_name()}, decode on CPU"
    return device_label([CPU])


def cuda_encodes(provider: str = "auto") -> bool:
    """The model runs on CUDA (whatever decodes): not kept on the CPU (GLIMPSE_PROVIDER over the setting),
    and CUDA is there."""
    return _preference(provider) != "cpu" and cuda_missing() is None


def phrase(reason: str) -> str:
    """A reason sentence as a phrase to put in brackets: 'No NVIDIA GPU…found.' -> 'no NVIDIA GPU…found'."""
    reason = reason.strip().rstrip(".")
    if len(reason) > 1 and reason[0].isupper() and not reason[1].isupper():
        reason = reason[0].lower() + reason[1:]
    return reason


def pipeline_for(model: StoredModel, provider: str = "auto") -> tuple["GpuPipeline | None", str | None]:
    """The GPU pipeline for `model` (made once per process and kept), or None and the reason."""
    reason = unavailable_reason(provider)
    if reason is not None:
        return None, reason
    key = model.image_space  # the same image tower, wherever its copy lies
    with _lock:
        if key not in _pipelines:
            try:
                _pipelines[key] = GpuPipeline(model, "cuda")
            except Exception as e:
                return None, f"the GPU pipeline does not start ({first_line(e)})"
        return _pipelines[key], None


def forget(pipeline: "GpuPipeline") -> None:
    """Drop a pipeline that failed, so that the next run starts a fresh one."""
    with _lock:
        for key, p in list(_pipelines.items()):
            if p is pipeline:
                del _pipelines[key]


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


# -- nvImageCodec ---------------------------------------------------------------------------------
def _import_nvimgcodec():
    """nvImageCodec, imported once with its start-up chatter (missing optional codecs such as JPEG 2000
    and TIFF, which Glimpse does not use) kept off the user's terminal."""
    global _nvimgcodec
    if _nvimgcodec is None:
        os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "0")  # no per-file log lines either
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        with tempfile.TemporaryFile() as sink:
            try:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
                module = importlib.import_module("nvidia.nvimgcodec")
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
        _nvimgcodec = module
    return _nvimgcodec


DECODERS_ENV = "GLIMPSE_GPU_DECODERS"
_KINDS = {"hw": "HW_GPU_ONLY", "gpu": "GPU_ONLY", "hybrid": "HYBRID_CPU_GPU", "cpu": "CPU_ONLY"}


def decoder_backends(spec: str | None):
    """nvImageCodec backends from 'hw:0.5,gpu' (the hardware decoder takes about half of each batch, the
    CUDA decoder the rest); None or '' -> None: every backend, the hardware decoder first where there is one."""
    if not spec:
        return None
    nv = _import_nvimgcodec()
    backends = []
    for part in spec.split(","):
        name, _, hint = part.strip().partition(":")
        if name not in _KINDS:
            raise ValueError(f"unknown decoder {name!r} in {spec!r} (known: {', '.join(_KINDS)})")
        backends.append(nv.Backend(getattr(nv.BackendKind, _KINDS[name]), float(hint) if hint else 1.0))
    return backends


def _decoder(device: str, spec: str | None = None):
    """`spec`: see `decoder_backends`; by default from the environment variable GLIMPSE_GPU_DECODERS."""
    nv = _import_nvimgcodec()
    if device == "cpu":
        return nv.Decoder(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, backends=[nv.Backend(nv.BackendKind.CPU_ONLY)])
    spec = os.environ.get(DECODERS_ENV) if spec is None else spec
    return nv.Decoder(device_id=0, backends=decoder_backends(spec))


def is_jpeg(path: str) -> bool:
    """A JPEG file (by its first bytes, whatever its name), other than a camera RAW."""
    if is_raw(path):
        return False
    with open(path, "rb") as f:
        return f.read(3) == JPEG_MAGIC


def cpu_pixels(data: bytes, cfg: PreprocessConfig) -> np.ndarray:
    """A JPEG's bytes through the CPU path (Pillow, reduced DCT scale): the model's float32 CHW input."""
    return to_array(open_image(io.BytesIO(data), cfg), cfg)


def cpu_pixels_or_error(data: bytes, cfg: PreprocessConfig) -> np.ndarray | str:
    """`cpu_pixels`, or the reason it failed (a decoder bug must not stop the run)."""
    try:
        return cpu_pixels(data, cfg)
    except ImageError as e:
        return str(e)
    except Exception as e:
        return f"cannot be decoded ({type(e).__name__}: {e})"


# -- preprocessing in torch (any device) ----------------------------------------------------------
def draft_scale(w: int, h: int, longest: int) -> int:
    """The DCT scale Pillow's `Image.draft(mode, (longest, longest))` picks for a w x h JPEG."""
    scale = min(w // longest, h // longest)
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def _resize(x, size: tuple[int, int], interpolation: str):
    """x: (1, 3, h, w) float in 0..255; size (w, h). Pillow's filters: antialiased, cubic a = -0.5."""
    import torch.nn.functional as F

    w, h = size
    x = F.interpolate(x, size=(h, w), mode=interpolation, antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255)  # Pillow resizes 8-bit images: its result is 8-bit


def _crop_or_pad(x, th: int, tw: int, fill: int):
    """`model.preprocess._center_crop_or_pad` on (1, 3, h, w)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if tw > w or th > h:
        left, top = (tw - w) // 2 if tw > w else 0, (th - h) // 2 if th > h else 0
        pw, ph = max(tw - w, 0), max(th - h, 0)
        x = F.pad(x, (left, pw - left, top, ph - top), value=float(fill))
        h, w = x.shape[-2:]
        if (w, h) == (tw, th):
            return x
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return x[..., top:top + th, left:left + tw]


def preprocess_one(image, cfg: PreprocessConfig, drafted: bool = True):
    """An upright RGB image as a (h, w, 3) uint8 tensor (on any device) to the model's normalised
    (3, H, W) float32 input: `model.preprocess.to_array`, in torch. `drafted`: average over the blocks
    of the DCT scale the CPU path would decode this JPEG at, first."""
    import torch.nn.functional as F

    x = image.permute(2, 0, 1).unsqueeze(0).float()
    h, w = x.shape[-2:]
    if drafted:
        s = draft_scale(w, h, max(cfg.size))
        if s > 1:
            x = F.avg_pool2d(x, s, ceil_mode=True).round_()
            h, w = x.shape[-2:]
    th, tw = cfg.size
    if cfg.resize_mode == "squash":
        x = _resize(x, (tw, th), cfg.interpolation)
    elif cfg.resize_mode == "longest":
        x = _crop_or_pad(_resize(x, _keep_ratio(w, h, th, tw, 1.0), cfg.interpolation), th, tw, cfg.fill_color)
    else:
        if th == tw:
            size, interpolation = _resized_shortest(w, h, th), cfg.interpolation
        else:  # as open_clip (and model.preprocess): ResizeKeepRatio, bicubic
            size, interpolation = _keep_ratio(w, h, th, tw, 0.0), "bicubic"
        if size != (w, h):
            x = _resize(x, size, interpolation)
        x = _crop_or_pad(x, th, tw, 0)
    std = np.asarray(cfg.std, np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (np.asarray(cfg.mean, np.float64) / std).astype(np.float32)
    out = x[0].clone()
    for c in range(3):  # the same float32 arithmetic as to_array: x * (1 / (255 std)) - mean / std
        out[c].mul_(float(scale[c])).sub_(float(shift[c]))
    return out


# -- the pipeline ---------------------------------------------------------------------------------
class GpuPipeline:
    """Encodes a batch of JPEG bytes and CPU-preprocessed arrays, in order, on one device."""

    batch_size = 128

    def __init__(self, model: StoredModel, device: str = "cuda", fp16: bool = True, workers: int | None = None,
                 pixel_budget: int | None = None, decoders: str | None = None):
        import torch

        self.model, self.cfg, self.device = model, model.preprocess, device
        self._session = make_session(model.visual_path, "cuda" if device == "cuda" else "cpu")
        if device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"this PyTorch ({torch.__version__}) cannot use the GPU")
            if self._session.get_providers()[0] != CUDA:
                raise RuntimeError("ONNX Runtime could not start CUDA for the image model")
            free, _ = torch.cuda.mem_get_info()
            self.pixel_budget = pixel_budget or max(50_000_000, min(GPU_PIXEL_BUDGET, free // 15))
        else:
            self.pixel_budget = pixel_budget or PIXEL_BUDGET
        nv = _import_nvimgcodec()
        self._decoder = _decoder(device, decoders)
        self._params = nv.DecodeParams(apply_exif_orientation=True, color_spec=nv.ColorSpec.SRGB,
                                       sample_format=nv.SampleFormat.I_RGB)
        self._session16 = None
        self.fp16 = fp16
        self._fp16_checked = not fp16
        self.precision = "fp32"
        self.fp16_note = "" if fp16 else "fp16 not asked for"
        self._pool = ThreadPoolExecutor(workers or cpu_threads(), thread_name_prefix="jpeg-cpu")
        self.stats = {"device_decoded": 0, "cpu_decoded": 0, "arrays": 0}
        self.closed = False

    def describe(self) -> str:
        where = f"GPU: {gpu_name()}" if self.device == "cuda" else "CPU (GPU pipeline code)"
        return f"{where}, decode on GPU, {self.precision}"

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.closed = True

    # -- decode + preprocess ---------------------------------------------------------------------
    def preprocess(self, sources: Sequence) -> tuple[object, list[str | None]]:
        """`sources`: JPEG bytes, or float32 (3, H, W) arrays already preprocessed. Returns the batch
        tensor (n_ok, 3, H, W) on the device, in the order given, and per source None or why it failed."""
        import torch

        n = len(sources)
        th, tw = self.cfg.size
        out = torch.empty((n, 3, th, tw), dtype=torch.float32, device=self.device)
        errors: list[str | None] = [None] * n
        jpegs: list[int] = []
        for i, s in enumerate(sources):
            if isinstance(s, np.ndarray):
                out[i] = torch.from_numpy(np.ascontiguousarray(s, np.float32)).to(self.device)
                self.stats["arrays"] += 1
            else:
                jpegs.append(i)
        refused = self._decode_on_device(sources, jpegs, out)
        for i, result in zip(refused, self._pool.map(self._cpu_decode, [sources[i] for i in refused])):
            if isinstance(result, str):
                errors[i] = result
            else:
                out[i] = torch.from_numpy(result).to(self.device)
                self.stats["cpu_decoded"] += 1
        if any(errors):
            out = out[[i for i in range(n) if errors[i] is None]]
        return out, errors

    def _cpu_decode(self, data: bytes) -> np.ndarray | str:
        return cpu_pixels_or_error(bytes(data), self.cfg)

    def _decode_on_device(self, sources: Sequence, jpegs: list[int], out) -> list[int]:
        """Decode the JPEGs at `jpegs` into out[i]; returns the indices the device decoder refused."""
        import torch

        nv = _import_nvimgcodec()
        refused, chunk, streams, pixels = [], [], [], 0
        stream = torch.cuda.current_stream().cuda_stream if self.device == "cuda" else 0

        def flush() -> None:
            images = self._decoder.decode(streams, params=self._params, cuda_stream=stream) if streams else []
            for i, img in zip(chunk, images):
                if img is None:
                    refused.append(i)
                    continue
                out[i] = preprocess_one(self._tensor(img), self.cfg)
                self.stats["device_decoded"] += 1
            chunk.clear()
            streams.clear()

        for i in jpegs:
            try:
                cs = nv.CodeStream(bytes(sources[i]))
                ok = cs.codec_name == "jpeg" and cs.num_channels == 3 and cs.precision == 8
            except Exception:
                ok = False
            if not ok:  # greyscale, CMYK, 12-bit or damaged: Pillow decides
                refused.append(i)
                continue
            if chunk and pixels + cs.width * cs.height > self.pixel_budget:
                flush()
                pixels = 0
            chunk.append(i)
            streams.append(cs)
            pixels += cs.width * cs.height
        flush()
        return sorted(refused)

    def _tensor(self, img):
        import torch

        if self.device == "cuda" and img.buffer_kind == _import_nvimgcodec().ImageBufferKind.STRIDED_DEVICE:
            return torch.as_tensor(img, device="cuda")
        return torch.from_numpy(np.asarray(img.cpu())).to(self.device)

    # -- the model --------------------------------------------------------------------------------
    def encode(self, sources: Sequence, control: Control | None = None) -> tuple[np.ndarray, list[str | None]]:
        """Vectors (L2-normalised float32 (n_ok, D)) for the sources that decoded, in order, and per
        source None or the reason it failed. A cancel through `control` ends a model run at once."""
        batch, errors = self.preprocess(sources)
        return self.run(batch, control), errors

    def run(self, batch, control: Control | None = None) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.model.embed_dim), np.float32)
        if not self._fp16_checked:
            return self._check_fp16(batch, control)
        return self._run(self._session16 or self._session, batch, control)

    def _run(self, session, batch, control: Control | None = None) -> np.ndarray:
        import onnxruntime as ort
        import torch

        x = batch.contiguous()
        binding = session.io_binding()
        binding.bind_input(session.get_inputs()[0].name, device_type=self.device, device_id=0,
                           element_type=np.float32, shape=tuple(x.shape), buffer_ptr=x.data_ptr())
        binding.bind_output(session.get_outputs()[0].name, self.device, 0)
        if self.device == "cuda":
            torch.cuda.current_stream().synchronize()  # the batch is complete before ONNX Runtime reads it
        options = ort.RunOptions()
        try:
            with (control or Control()).on_cancel(lambda: setattr(options, "terminate", True)):
                session.run_with_iobinding(binding, options)
        except Exception:
            if options.terminate:
                raise Cancelled("cancelled") from None
            raise
        return _normalize(binding.copy_outputs_to_cpu()[0])

    def _check_fp16(self, batch, control: Control | None = None) -> np.ndarray:
        """Use fp16 from now on if it agrees with fp32 on this batch (cosine >= FP16_COS_MIN). Returns the
        batch's vectors in the precision chosen (the model runs twice on it, not three times)."""
        self._fp16_checked = True
        full = self._run(self._session, batch, control)
        try:
            session16 = self._fp16_session()
            half = self._run(session16, batch, control)
        except Cancelled:
            raise
        except Exception as e:
            self.fp16_note = f"fp16 not used: it does not run ({first_line(e)})"
            return full
        cos = float(np.min(np.sum(full * half, axis=1)))
        if cos >= FP16_COS_MIN:
            self._session16, self.precision = session16, "fp16"
            self.fp16_note = f"fp16: cosine >= {cos:.5f} with fp32 on {len(batch)} photos"
            return half
        self.fp16_note = f"fp16 not used: cosine {cos:.5f} with fp32 (needs {FP16_COS_MIN})"
        return full

    def _fp16_session(self):
        """fp16 weights and arithmetic, fp32 inputs and outputs (as benchmarks/gpu_check.py measured)."""
        import onnx
        import onnxruntime as ort
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        half = OnnxModel(convert_float_to_float16(onnx.load(str(self.model.visual_path)), keep_io_types=True))
        half.topological_sort()
        opts = ort.SessionOptions()
        # ORT_ENABLE_ALL adds CPU layout passes that crash ORT 1.31 on this fp16 graph (gpu_check).
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.log_severity_level = 3
        providers = [(CUDA, {"device_id": 0})] if self.device == "cuda" else ["CPUExecutionProvider"]
        return ort.InferenceSession(half.model.SerializeToString(), sess_options=opts, providers=providers)
