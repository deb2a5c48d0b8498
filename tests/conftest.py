from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def glimpse_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data, cache and config folders."""
    home = tmp_path / "glimpse-home"
    monkeypatch.setenv("GLIMPSE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_torch():
    return tiny.make_model(seed=0)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_torch) -> Path:
    """An open_clip folder (config + safetensors) with random tiny weights."""
    return tiny.save_folder(tiny_torch, tmp_path_factory.mktemp("src") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_stored(tmp_path_factory, tiny_folder):
    """The tiny model imported once into a store of its own (read-only for tests)."""
    from model.obtain import import_path
    from model.store import ModelStore

    store = ModelStore(tmp_path_factory.mktemp("store"))
    return import_path(store, tiny_folder)


@pytest.fixture
def store_copy(tmp_path, tiny_stored):
    """A writable store holding a copy of the tiny model."""
    from model.store import ModelStore

    root = tmp_path / "models"
    shutil.copytree(tiny_stored.path, root / tiny_stored.id)
    return ModelStore(root)


def run_glimpse(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the `glimpse` command as a user would, in a fresh process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def library(glimpse_home, tiny_stored):
    """A Library in the test's own home, with the tiny model installed and active."""
    from app.library.library import Library

    lib = Library()
    shutil.copytree(tiny_stored.path, lib.paths.models / tiny_stored.id)
    lib.models.use(tiny_stored.id)
    yield lib
    lib.close()


@pytest.fixture
def indexed_by_cli(library, tmp_path) -> Path:
    """Three photos in tmp_path/Photos, added and indexed through the `glimpse` command, as a user would."""
    library.close()
    photos = tmp_path / "Photos"
    make_photos(photos, 3)
    for args in (("folders", "add", str(photos)), ("index",)):
        r = run_glimpse(*args)
        assert r.returncode == 0, r.stderr
    return photos


def make_photos(folder: Path, n: int, start: int = 0, size: tuple[int, int] = (160, 120), ext: str = "jpg") -> list[Path]:
    """n distinct photo-like files in `folder`."""
    import images

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        p = folder / f"photo_{i:05d}.{ext}"
        images.photo(*size, seed=i).save(p, quality=90) if ext == "jpg" else images.photo(*size, seed=i).save(p)
        paths.append(p)
    return paths


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds (real watchers and processes take their time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def file_digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_variants(tmp_path_factory, tiny_torch, tiny_stored):
    """Models beside the tiny one: 'tiny-text' differs only in its text tower (so it shares the image
    space), 'tiny-other' has other weights throughout (another image space)."""
    import torch

    from model.obtain import import_path
    from model.store import ModelStore

    src = tmp_path_factory.mktemp("variants")
    text_only = tiny.make_model(seed=0)
    with torch.no_grad():
        text_only.text_projection.mul_(-1.0)
    store = ModelStore(tmp_path_factory.mktemp("variant-store"))
    other = tiny.save_folder(tiny.make_model(seed=1), src / "other")
    return {
        "tiny-text": import_path(store, tiny.save_folder(text_only, src / "text"), name="tiny-text"),
        "tiny-other": import_path(store, other, name="tiny-other"),
        "other-folder": other,
    }


def install_copy(library, stored, name: str | None = None):
    """Copy a stored model into the library's store (optionally under another name); returns it."""
    target = library.paths.models / (name or stored.id)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(stored.path, target)
    if name and name != stored.id:
        import json

        manifest = json.loads((target / "manifest.json").read_text())
        manifest["id"] = name
        (target / "manifest.json").write_text(json.dumps(manifest))
    return library.models.store.get(name or stored.id)
