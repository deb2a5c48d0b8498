"""What the user sees about the library, as typed values: `Library.status()` returns a `LibraryStatus`."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FolderStatus:
    photos: int              # searchable
    errors: int              # could not be read
    problem: str | None = None  # why the folder cannot be scanned now (missing, unmounted), or None


@dataclass(frozen=True)
class LibraryStatus:
    folders: dict[str, FolderStatus] = field(default_factory=dict)  # by root, in the order they were added
    photos: int = 0
    errors: int = 0
    active_model: str | None = None  # answers searches
    next_model: str | None = None    # its vectors are being made; it takes over when they are complete
    has_model: bool = False          # the active model is installed and opens
    vectors: int = 0                 # in the active model's image space
    database_bytes: int = 0
    database: str = ""
    watch: bool = True               # folders are watched for changes (else only rescanned)
    exclude: tuple[str, ...] = ()    # glob patterns skipped

    @property
    def problems(self) -> list[str]:
        return [f.problem for f in self.folders.values() if f.problem]
