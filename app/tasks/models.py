"""Getting, choosing and removing models: the same steps for the CLI and the window.

torch and open_clip are imported only inside `pull` and `import_model` (through `model.obtain`),
never when this module is imported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from app.library.library import Library, Update
from model.jobs import Job
from model.store import StoredModel


@dataclass(frozen=True)
class Obtained:
    model: StoredModel
    active: bool      # it is the model search uses now (the first model, or it replaced the active one)


def _adopt(library: Library, model: StoredModel) -> Obtained:
    """A new model becomes active if there was none; a re-import of the active model's name stays active."""
    return Obtained(model, library.models.adopt(model))


def pull(library: Library, name: str | None, job: Job, quiet: bool = True) -> Obtained:
    """Download a pretrained model (the default one when `name` is None) and install it."""
    from model import registry
    from model.obtain import pull as obtain_pull

    model = obtain_pull(library.models.store, name or registry.default().name, progress=job.report, quiet=quiet)
    return _adopt(library, model)


def import_model(library: Library, path: str | Path, job: Job, architecture: str | None = None,
                 name: str | None = None) -> Obtained:
    """Import an open_clip folder, or a weights file with its architecture, and install it."""
    from model.obtain import import_path

    model = import_path(library.models.store, path, architecture=architecture, name=name, progress=job.report)
    return _adopt(library, model)


def activate(library: Library, model_id: str, job: Job, index: bool = True,
             on_prepare: Callable[[str], None] | None = None,
             on_wait: Callable[[str], None] | None = None,
             update: Callable[[], Update] | None = None) -> bool:
    """Make `model_id` the model search uses. Returns True once it is active.

    A model sharing the active one's image space (or whose space is complete) is active at once and
    re-encodes nothing. Otherwise it becomes the next model, and `on_prepare(message)` is called once;
    with `index`, its space is indexed now (search keeps the old model meanwhile) and it takes over when
    done. A cancel leaves it next, and the next update carries on where this one stopped.

    `update` makes the vectors: by default `Library.update` in this process (the CLI; `on_wait` is passed
    to it). The window passes the indexing child (`app.tasks.index_process`): re-encoding a library opens
    every photo in the decoders, and a crash there must not take the window down."""
    def run() -> Update:
        if update is not None:
            return update()
        return library.update(progress=job.progress, control=job.control, on_wait=on_wait)

    old = library.models.active_id
    if library.activate(model_id):
        if index and not library.space_complete(library.models.active().image_space):
            # No model was active (or it was removed): nothing else can answer, so make its vectors now.
            run()
            job.check()
        return True
    if on_prepare is not None:
        on_prepare(f"Preparing {model_id}: search keeps {old} until its vectors are made.")
    if not index:
        return False
    done = run()
    job.check()
    return done.switched_to == model_id


def remove_model(library: Library, model_id: str) -> tuple[str | None, bool]:
    """Delete a model, and drop the vectors no installed model can use any more. Returns the model that
    took over search when the active one was removed (None otherwise), and whether its vectors are all
    made already (if not, an update makes them: `activate` it)."""
    took_over = library.remove_model(model_id)
    return took_over, took_over is None or library.space_complete(library.models.active().image_space)


def export_model(library: Library, model_id: str, folder: str | Path) -> Path:
    """Write a stored model as an open_clip folder (`open_clip_config.json` + `open_clip_model.safetensors`)
    that `open_clip.create_model_from_pretrained('local-dir:FOLDER')` loads: the user's model is theirs
    outside Glimpse too. Models that keep their weights are copied; a pulled one is converted (torch)."""
    import shutil

    from model import openclip
    from model.errors import ModelError

    import tempfile

    stored = library.models.store.get(model_id)
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ModelError(f"{folder} exists and is not an empty folder: give a new or empty one.")
    weights = stored.path / openclip.WEIGHT_NAMES[0]
    config = stored.path / "open_clip_config.json"
    loaded = None if weights.is_file() else openclip.from_stored(stored)
    try:  # written beside it, then renamed: a failure never leaves half a model there
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            shutil.copyfile(config, tmp / config.name)
            if loaded is None:
                shutil.copyfile(weights, tmp / weights.name)
            else:
                openclip.save_weights(loaded.model, tmp / openclip.WEIGHT_NAMES[0])
            if folder.exists():
                folder.rmdir()
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        raise ModelError(f"Cannot write {folder}: {e.strerror or e}.") from e
    return folder
