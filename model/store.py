"""The on-disk model store: one folder per model, named by its model id.

A folder holds `visual.onnx`, `textual.onnx`, `tokenizer.json`, `open_clip_config.json` and
`manifest.json` (architecture, lineage, embedding size, preprocessing, tokenizer, checksums, image
space). Fine-tuned models (a later feature) will add their open_clip weights as safetensors.
An optional int8 image tower (`visual.int8-SHA.onnx`, `glimpse models quantize`) is described under
`int8` in the manifest, not among its `files`: missing or damaged, the model opens and runs fp32.

The **image space** names the vectors a model's image tower makes: by default the first 16 hex digits
of the sha256 of `visual.onnx`, so two models with the same image tower share their photo vectors and
other weights under a reused name do not. A model that differs from its base only in the text tower
declares its base's image space in its manifest.

Models are installed atomically: they are built in a `.staging-*` folder inside the store and
renamed into place only once exported and checked, so a crash never leaves half a model. A
replaced model is first renamed to `.trash-*`; leftovers of either kind are swept at open.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import CorruptModel, ModelError, ModelExists, ModelNotFound
from .preprocess import PreprocessConfig

MANIFEST = "manifest.json"
INT8_FILE = "visual.int8.onnx"  # the optional int8 image tower (model.quantize), stored as visual.int8-SHA.onnx
FORMAT = 1
SPACE_DIGITS = 16
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def valid_id(model_id: str) -> bool:
    return bool(_ID.match(model_id))


def sanitize_id(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-._") or "model"
    return s[:128]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_VIT_SIZES = {384: "S", 512: "M", 768: "B", 1024: "L", 1280: "H", 1408: "g", 1664: "bigG"}


def describe_architecture(model_cfg: dict) -> str:
    """A readable architecture for an open_clip `model_cfg` that names none: open_clip's naming
    (ViT-B-32) where the vision tower is a standard ViT, else its shape."""
    vision, text = model_cfg.get("vision_cfg") or {}, model_cfg.get("text_cfg") or {}
    if vision.get("timm_model_name"):
        name = str(vision["timm_model_name"])
    elif isinstance(vision.get("layers"), (list, tuple)):
        name = f"ResNet ({'-'.join(map(str, vision['layers']))} blocks)"
    else:
        width, layers, patch = vision.get("width", 768), vision.get("layers", 12), vision.get("patch_size", 16)
        size = _VIT_SIZES.get(width)
        name = f"ViT-{size}-{patch}" if size else f"ViT ({width} wide, {layers} layers, patch {patch})"
    return f"{text['hf_model_name']}-{name}" if text.get("hf_model_name") else name


@dataclass(frozen=True)
class StoredModel:
    id: str
    path: Path
    manifest: dict

    @property
    def visual_path(self) -> Path:
        return self.path / "visual.onnx"

    @property
    def int8_path(self) -> Path | None:
        """The int8 image tower made from this model's `visual.onnx` (`glimpse models quantize`), if it is
        there whole (by its size; `int8_problem` says why not). It is optional: without it the model runs
        its fp32 tower."""
        if not self.manifest.get("int8") or self.int8_problem:
            return None
        return self.path / self.manifest["int8"]["file"]

    @property
    def int8_problem(self) -> str | None:
        """Why the int8 tower the manifest names cannot be used, in words; None when it can or none was made."""
        info = self.manifest.get("int8") or {}
        name = info.get("file")
        if not name:
            return "none was made" if info else None
        if info.get("from") != self.manifest["files"].get("visual.onnx"):
            return "it was made from an image tower since replaced"
        f = self.path / name
        size = info.get("size")
        if not f.is_file():
            return f"its file {name} is missing"
        if size is not None and f.stat().st_size != size:
            return f"its file {name} has the wrong size"
        return None

    @property
    def required_files(self) -> dict[str, str]:
        """The files the model needs, with their sha256 (the optional int8 tower is never among them)."""
        return dict(self.manifest["files"])

    def verify_int8(self) -> str | None:
        """`int8_problem`, or a failed checksum; None when the int8 tower is whole or none was made."""
        problem = self.int8_problem
        if problem or not self.manifest.get("int8"):
            return problem
        info = self.manifest["int8"]
        digest = info.get("sha256")
        if digest and sha256(self.path / info["file"]) != digest:
            return f"its file {info['file']} fails its checksum"
        return None

    @property
    def textual_path(self) -> Path:
        return self.path / "textual.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / self.manifest["tokenizer"].get("file", "tokenizer.json")

    @property
    def architecture(self) -> str:
        """The open_clip architecture. Folders imported before Glimpse read it from the config kept their
        folder's name instead: those are described from their `open_clip_config.json`."""
        arch = str(self.manifest.get("architecture") or "")
        lineage = self.manifest.get("lineage") or {}
        if arch and not (lineage.get("kind") == "import" and arch == Path(str(lineage.get("path", ""))).name):
            return arch
        try:
            cfg = json.loads((self.path / "open_clip_config.json").read_text(encoding="utf-8"))["model_cfg"]
            return describe_architecture(cfg)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return arch or "?"

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    @property
    def image_space(self) -> str:
        """The id of the vector space of this model's image tower (see the module docstring)."""
        return self.manifest.get("image_space") or self.manifest["files"]["visual.onnx"][:SPACE_DIGITS]

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.manifest["preprocess"])

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def verify(self) -> None:
        """Check every required file against the manifest's sha256; raise CorruptModel on the first
        mismatch. The optional int8 tower is checked by `verify_int8`."""
        for name, digest in self.required_files.items():
            f = self.path / name
            if not f.is_file():
                raise CorruptModel(self._broken(f"its file {name} is missing"))
            if sha256(f) != digest:
                raise CorruptModel(self._broken(f"its file {name} fails its checksum"))

    def _broken(self, what: str) -> str:
        return (f"Model '{self.id}' is damaged: {what}. "
                f"Remove it with `glimpse models remove {self.id}`, then pull or import it again.")


class ModelStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep()

    def _sweep(self) -> None:
        for p in self.root.iterdir():
            if p.name.startswith((".staging-", ".trash-")):
                shutil.rmtree(p, ignore_errors=True)

    def ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def exists(self, model_id: str) -> bool:
        return valid_id(model_id) and (self.root / model_id).is_dir()

    def get(self, model_id: str) -> StoredModel:
        """Open a stored model: its manifest must parse and every required file must exist with its size
        (a missing or damaged int8 tower only turns int8 off: see `StoredModel.int8_problem`)."""
        if not self.exists(model_id):
            known = ", ".join(self.ids()) or "none yet"
            raise ModelNotFound(f"No model named '{model_id}' (installed: {known}). "
                                "See `glimpse models list` and `glimpse models pull`.")
        path = self.root / model_id
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            dict(manifest["files"])
            sizes = manifest.get("sizes", {})
            for key in ("embed_dim", "preprocess", "tokenizer"):
                manifest[key]
        except FileNotFoundError:
            raise CorruptModel(StoredModel(model_id, path, {})._broken("its manifest.json is missing")) from None
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptModel(StoredModel(model_id, path, {})._broken(f"its manifest.json is unreadable ({e})")) from None
        model = StoredModel(model_id, path, manifest)
        for name in model.required_files:
            f = path / name
            if not f.is_file():
                raise CorruptModel(model._broken(f"its file {name} is missing"))
            if name in sizes and f.stat().st_size != sizes[name]:
                raise CorruptModel(model._broken(f"its file {name} has the wrong size"))
        return model

    def list(self) -> list[StoredModel | CorruptModel]:
        """Every stored model, or the error that says why it cannot be opened."""
        out: list[StoredModel | CorruptModel] = []
        for model_id in self.ids():
            try:
                out.append(self.get(model_id))
            except CorruptModel as e:
                e.model_id = model_id  # type: ignore[attr-defined]
                out.append(e)
        return out

    def remove(self, model_id: str) -> None:
        if not self.exists(model_id):
            raise ModelNotFound(f"No model named '{model_id}'.")
        trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
        os.replace(self.root / model_id, trash / model_id)
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch folder inside the store (same file system, so `install` is a rename)."""
        tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def install(self, staged: Path, manifest: dict, exists: str = "replace") -> StoredModel:
        """Write the manifest (with checksums of every file) into `staged`, then rename it into place.

        `exists` says what happens when a model of that id is there already (or appears meanwhile, from
        another process): "replace" it (a re-import), "fail" (ModelExists), or "number": install as
        `ID-2`, `ID-3`… (a fine-tune's default name). Only "replace" ever removes a model."""
        model_id = manifest["id"]
        if not valid_id(model_id):
            raise ValueError(f"invalid model id {model_id!r}")
        names = sorted(p.name for p in staged.iterdir() if p.is_file() and p.name != MANIFEST)
        files = {n: sha256(staged / n) for n in names}
        self._share_identical(staged, files)
        manifest = dict(manifest, format=FORMAT, files=files,
                        sizes={n: (staged / n).stat().st_size for n in names})
        if not manifest.get("image_space"):
            manifest["image_space"] = files["visual.onnx"][:SPACE_DIGITS]
        tmp = staged / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, staged / MANIFEST)
        _fsync_dir(staged)
        target = self.root / model_id
        if exists != "replace":
            return self.get(self._install_new(staged, manifest, exists == "number"))
        trash = None
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
            os.replace(target, trash / model_id)
        os.replace(staged, target)
        _fsync_dir(self.root)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return self.get(model_id)

    def add_file(self, model_id: str, staged: Path, key: str, info: dict) -> StoredModel:
        """Add an optional file (made in a scratch folder inside the store) to an installed model, described
        by `info` under `key` in its manifest (with its `file` name, `sha256` and `size` added). It is not
        one of the manifest's `files`: the model opens without it.

        Its name carries its checksum (`visual.int8.onnx` -> `visual.int8-1a2b…onnx`), so it never replaces
        a file a manifest names: the file is renamed into place, then the manifest, re-read just before,
        is replaced (both atomic), then the file the old manifest named under `key`, if another, is
        deleted. A crash at any point leaves a model that opens, at worst with an extra file. If `info`
        has `from` (the sha256 of `visual.onnx` it was made from) and the model's image tower changed
        meanwhile (a re-import by another process), nothing is written and ModelError says so."""
        path = self.get(model_id).path
        digest, size = sha256(staged), staged.stat().st_size
        name = f"{Path(staged.name).stem}-{digest[:SPACE_DIGITS]}{staged.suffix}"
        target = path / name
        if not (target.is_file() and sha256(target) == digest):
            os.replace(staged, target)
        current = self.get(model_id).manifest  # as it is now: another process may have changed it
        if "from" in info and current["files"].get("visual.onnx") != info["from"]:
            if name != (current.get(key) or {}).get("file"):
                target.unlink(missing_ok=True)
            raise ModelError(f"Model '{model_id}' changed while its {key} file was made: run it again.")
        old = (current.get(key) or {}).get("file")
        manifest = dict(current, **{key: dict(info, file=name, sha256=digest, size=size)})
        tmp = path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path / MANIFEST)
        _fsync_dir(path)
        if old and old != name:
            (path / old).unlink(missing_ok=True)
        return self.get(model_id)

    def _install_new(self, staged: Path, manifest: dict, number: bool) -> str:
        """Rename `staged` into place without replacing anything: renaming a folder onto a folder that
        holds files fails, so two processes can never both take one name."""
        stem, n = manifest["id"], 1
        while True:
            model_id = stem if n == 1 else f"{stem}-{n}"
            target = self.root / model_id
            if not target.exists():
                if model_id != manifest["id"]:
                    manifest = dict(manifest, id=model_id)
                    (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
                try:
                    os.rename(staged, target)
                    _fsync_dir(self.root)
                    return model_id
                except OSError:
                    if not target.exists():
                        raise
            if not number:
                raise ModelExists(f"A model named '{stem}' exists already: choose another name.")
            n += 1


    def _share_identical(self, staged: Path, files: dict[str, str]) -> None:
        """Hard-link files identical to another model's (same name, same sha256) instead of keeping a copy.

        A text-tower fine-tune exports the very same `visual.onnx` as its base (hundreds of MB for
        ViT-B-32); files in the store are never written in place, so sharing them is safe, and removing
        either model leaves the other's link whole. Where links are not possible the copy stays."""
        shared: set[str] = set()
        for other in self.ids():
            try:
                theirs = json.loads((self.root / other / MANIFEST).read_text(encoding="utf-8")).get("files", {})
            except (OSError, ValueError):
                continue
            for name, digest in files.items():
                source = self.root / other / name
                if name in shared or theirs.get(name) != digest or not source.is_file() or sha256(source) != digest:
                    continue
                link = staged / (name + ".link")
                try:
                    os.link(source, link)
                    os.replace(link, staged / name)
                    shared.add(name)
                except OSError:
                    link.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    for f in [*(p for p in path.iterdir() if p.is_file()), path]:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
