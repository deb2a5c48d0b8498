"""Bringing the index up to date: the use case behind `glimpse index` and the window's indexing."""
from __future__ import annotations

from typing import Callable

from app.library.library import Library, Update
from model.jobs import Job


def index(library: Library, job: Job, only: list[str] | None = None, batch_size: int = 32,
          on_wait: Callable[[str], None] | None = None) -> Update:
    """Scan the watched folders, index what is new or changed, forget what is gone; also prepares the
    next model's image space when one is pending. Waits (calling `on_wait` once) while another process
    writes the catalog. A cancel stops at the next batch; the next run resumes exactly."""
    return library.update(progress=job.progress, control=job.control, only=only, batch_size=batch_size,
                          on_wait=on_wait)
