"""The errors a user can act on, and one line for any other."""
from __future__ import annotations

import errno
import os

from app.library.caption_index import CaptionError
from app.library.catalog import CatalogError
from app.library.folders import FolderError
from app.library.lock import CatalogBusy
from app.library.query import QueryError
from model.errors import ModelError
from model.imagefile import ImageError
from model.jobs import Cancelled



class IndexingStopped(Exception):
    """The window's indexing process failed or kept crashing (`index_process`); the message says so."""


# Raised with a message written for the user: shown as it is, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ModelError, ImageError, CatalogError, CatalogBusy, FolderError,
                                                 QueryError, Cancelled, CaptionError, IndexingStopped)


def user_message(e: BaseException) -> str:
    """One line a user can act on; unexpected errors keep their type for bug reports."""
    full = no_space(e)
    if full:
        return full[0].upper() + full[1:]
    if isinstance(e, USER_ERRORS):
        return str(e)
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    return f"{type(e).__name__}: {e}"


_FULL = ("No space left on device", "Disk quota exceeded", "not enough space on the disk",
         os.strerror(errno.ENOSPC), os.strerror(getattr(errno, "EDQUOT", errno.ENOSPC)))


def no_space(error: BaseException, again: str = "try again", where: str | None = None) -> str | None:
    """One line for a full disk (or quota), naming Glimpse's folder on it; None for any other error.
    LanceDB reports it as its own error whose message holds the OS's text, so the message counts too.
    `where`: what was being written, when the error does not say (its file name wins)."""
    seen, chain, filename = set(), [], None
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    full = False
    for e in chain:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            full = True
            filename = filename or (os.fsdecode(e.filename) if e.filename else None)
        elif any(text.lower() in str(e).lower() for text in _FULL):
            full = True
    if not full:
        return None
    if filename or not where:
        where = _full_folder(filename)
    return f"no space left on {where}; free some space and {again} — nothing was lost"


def _full_folder(filename: str | None) -> str:
    """The Glimpse folder the failed write went to, or the one with the least free space."""
    import shutil
    from pathlib import Path

    from app.library.paths import Paths

    paths = Paths.default()
    folders = [(paths.data / "catalog", "the catalog"), (paths.models, "the models"),
               (paths.cache / "thumbnails", "the thumbnails"), (paths.config, "the settings")]
    if filename:
        target = Path(os.path.abspath(filename))
        for folder, role in folders:
            if folder == target or folder in target.parents:
                return f"{folder} ({role})"
        return str(target.parent)

    def free(folder: Path) -> int:
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            return 1 << 62
    folder, role = min(folders, key=lambda f: free(f[0]))  # first of equals: the catalog
    return f"{folder} ({role})"
