"""The watched folders ("roots") and exclusions, kept in settings. Removing a root forgets its photos
in the catalog; the files themselves are never touched."""
from __future__ import annotations

import os

from .catalog import Catalog
from .formats import Exclusions
from .settings import Settings


class FolderError(ValueError):
    """A folder that cannot be added or removed, with a message fit for the user."""


def normalise(path: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))


class Folders:
    def __init__(self, settings: Settings, catalog: Catalog | None = None):
        self.settings = settings
        self.catalog = catalog

    def list(self) -> list[str]:
        return list(self.settings["folders"] or [])

    @property
    def exclusions(self) -> Exclusions:
        return Exclusions(self.settings["exclude"] or [])

    def add(self, path: str) -> str:
        folder = normalise(path)
        if not os.path.isdir(folder):
            raise FolderError(f"{path} is a file, not a folder" if os.path.exists(folder)
                              else f"{path}: no such folder")
        if not os.access(folder, os.R_OK | os.X_OK):
            raise FolderError(f"{path}: permission denied")

        def added(roots: list[str] | None) -> list[str]:  # checked against the file, under its lock
            roots = list(roots or [])
            if folder in roots:
                raise FolderError(f"{folder} is already watched")
            for r in roots:
                if folder.startswith(r.rstrip(os.sep) + os.sep):
                    raise FolderError(f"{folder} is already watched as part of {r}")
                if r.startswith(folder.rstrip(os.sep) + os.sep):
                    raise FolderError(f"{folder} contains the watched folder {r}; remove that one first")
            return roots + [folder]

        self.settings.update("folders", added)
        return folder

    def remove(self, path: str) -> str:
        folder = normalise(path)
        roots = self.list()
        if folder not in roots:
            raise FolderError(f"{path} is not a watched folder (see `glimpse folders list`)")
        # Against the file as it is now: a folder another process added meanwhile stays.
        self.settings.update("folders", lambda now: [r for r in now or [] if r != folder])
        if self.catalog is not None:
            self.catalog.delete_root(folder).result()
        return folder

    def set_exclusions(self, patterns: list[str]) -> None:
        self.settings["exclude"] = [p for p in (s.strip() for s in patterns) if p]
