"""Which files are photos, and which folders are never looked into."""
from __future__ import annotations

import fnmatch

from model.imagefile import RAW_EXTENSIONS

# Decoded by Pillow (AVIF natively), HEIC/HEIF by pillow-heif.
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp",
    ".avif", ".heic", ".heif", ".hif",
})
# Camera RAW (model.imagefile reads them): indexed through the JPEG preview embedded in the file.
SIDECAR_JPEG = (".jpg", ".jpeg", ".JPG", ".JPEG", ".Jpg")
PHOTO_EXTENSIONS = IMAGE_EXTENSIONS | RAW_EXTENSIONS

# Folder names skipped everywhere: hidden folders (".*") plus NAS thumbnails, VCS and tool folders.
SKIPPED_FOLDERS = frozenset({"@eaDir", "#recycle", "#snapshot", ".git", "node_modules", "__MACOSX", "$RECYCLE.BIN",
                             "System Volume Information", "lost+found"})


def extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def is_photo_name(name: str) -> bool:
    return not name.startswith(".") and extension(name) in PHOTO_EXTENSIONS


def is_raw(name: str) -> bool:
    return extension(name) in RAW_EXTENSIONS


class Exclusions:
    """Hidden and known folders, plus the user's glob patterns (matched on names and on relative paths)."""

    def __init__(self, patterns: list[str] | tuple[str, ...] = ()):
        self.patterns = tuple(p.strip().rstrip("/") for p in patterns if p and p.strip())

    def skips_folder(self, name: str, relative: str) -> bool:
        if name.startswith(".") or name in SKIPPED_FOLDERS:
            return True
        return self._matches(name, relative)

    def skips_file(self, name: str, relative: str) -> bool:
        return self._matches(name, relative)

    def _matches(self, name: str, relative: str) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in self.patterns)
