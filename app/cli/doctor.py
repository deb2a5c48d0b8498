"""`glimpse doctor`: what Glimpse runs on, and whether it works. Never imports torch."""
from __future__ import annotations

import platform
import sys

from app.library.units import human_size

from .context import Context

PACKAGES = ("onnxruntime-gpu", "onnxruntime", "numpy", "pillow", "pillow-heif", "tokenizers", "lancedb",
            "watchdog", "PySide6", "torch", "open_clip_torch", "onnx", "huggingface_hub")


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="versions, execution providers, folders and the active model")
    p.set_defaults(func=cmd_doctor)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _probe_providers(preference: str) -> list[str]:
    """Providers a small real session gets (a matrix product, which every provider can run)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from model.runtime import make_session

    w = numpy_helper.from_array(np.eye(64, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 64])], [w])
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "probe.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
        session = make_session(path, preference)
        session.run(None, {"x": np.ones((2, 64), np.float32)})
        return list(session.get_providers())


def pipeline(provider: str) -> tuple[str, str | None]:
    """Which indexing pipeline will run, in words, and why not the GPU one (None when it runs).
    The GPU pipeline's own check (`model.gpu_pipeline.unavailable_reason`) decides: where an NVIDIA driver
    and nvImageCodec are there, it starts a GPU JPEG decoder (a CUDA context), but loads no model and no torch."""
    from model import gpu_pipeline
    from model.runtime import cpu_threads

    why_not = gpu_pipeline.unavailable_reason(provider)
    if why_not is None:
        return f"GPU decode (nvImageCodec) + ONNX Runtime CUDA, on {gpu_pipeline.gpu_name()}", None
    if gpu_pipeline.cuda_encodes(provider):
        return f"CPU decode + ONNX Runtime CUDA, on {gpu_pipeline.gpu_name()}", why_not
    return f"CPU decode + ONNX Runtime on the CPU ({cpu_threads()} threads)", why_not


def _int8(model, setting_on: bool) -> str:
    """Whether the active model has an int8 image tower, and whether indexing uses it."""
    problem = model.verify_int8()
    if not model.manifest.get("int8"):
        return ("none: make it with `glimpse models quantize` (setting int8_image_tower is on)" if setting_on
                else "none (`glimpse models quantize --use` makes one and indexes with it on the CPU)")
    if problem:
        return f"unusable ({problem}): indexing uses the fp32 tower; `glimpse models quantize` makes it again"
    if setting_on:
        return "yes, indexing uses it on the CPU (setting int8_image_tower)"
    return "yes, not in use (`glimpse models quantize --use` turns it on)"


def cmd_doctor(args) -> int:
    from model.runtime import CUDA, available_providers, cpu_threads, cuda_driver_present
    from model.errors import ModelError

    ctx = Context()
    ok = True
    print(f"Glimpse {_version('glimpse') or '(not installed)'} on Python {platform.python_version()}, "
          f"{platform.system()} {platform.machine()}")
    print("Packages:")
    for dist in PACKAGES:
        v = _version(dist)
        if v:
            print(f"  {dist:<18} {v}")
    print(f"Execution:\n  CPU threads        {cpu_threads()}")
    avail = available_providers()
    print(f"  providers built    {', '.join(avail)}")
    print(f"  CUDA driver        {'found' if cuda_driver_present() else 'not found'}")
    in_use = _probe_providers(ctx.settings["provider"])
    cuda_ok = CUDA in in_use
    print(f"  provider in use    {in_use[0]} (setting: {ctx.settings['provider']})")
    if CUDA in avail and cuda_driver_present() and not cuda_ok and ctx.settings["provider"] != "cpu":
        print("  CUDA usable        no: the CUDA provider did not load (missing CUDA 12/13 or cuDNN 9 "
              "libraries?); running on the CPU")
    else:
        print(f"  CUDA usable        {'yes' if cuda_ok else 'no'}")
    runs, why_not = pipeline(ctx.settings["provider"])
    print(f"  indexing pipeline  {runs}")
    if why_not:
        print(f"  why not the GPU    {why_not[:1].upper()}{why_not[1:]}")
    p = ctx.paths
    print(f"Folders:\n  data               {p.data}\n  cache              {p.cache}\n  config             {p.config}")
    print("Model:")
    try:
        model = ctx.models.active()
        model.verify()
        print(f"  active             {model.id} ({model.manifest.get('architecture')}, "
              f"{model.embed_dim} dims, {human_size(model.size_bytes)}), checksums ok")
        enc = ctx.models.encoder()
        enc.encode_texts(["a test"])
        print(f"  text encoder runs  on {enc.providers_in_use('textual')[0]}")
        print(f"  int8 tower         {_int8(model, ctx.settings['int8_image_tower'])}")
    except ModelError as e:
        ok = False
        print(f"  problem            {e}")
    print(f"Models installed: {len(ctx.models.store.ids())}")
    sys.stdout.flush()
    return 0 if ok else 1
