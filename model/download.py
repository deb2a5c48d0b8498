"""Downloading open_clip weights from the Hugging Face Hub, with progress and a fast offline error.

huggingface_hub retries a failed connection for about 25 seconds; Glimpse first checks that the
Hub's host answers at all (3 s), so an offline machine gets its answer at once.
"""
from __future__ import annotations

import os
import socket
from typing import Callable
from urllib.parse import urlparse

from .errors import ModelError, OfflineError

Progress = Callable[[str, int, int], None]  # (stage, done, total)

OFFLINE_HINT = ("Glimpse cannot reach the Hugging Face Hub ({why}). To use a model without internet, "
                "download its open_clip folder (open_clip_config.json + open_clip_model.safetensors) "
                "on another machine, copy it here and {then}")
IMPORT_COMMAND = "run `glimpse models import PATH`."
IMPORT_BUTTON = "use the Import model folder… button."


def offline(why: str) -> OfflineError:
    """The offline error, in the command line's words and in the window's."""
    return OfflineError(OFFLINE_HINT.format(why=why, then=IMPORT_COMMAND),
                        OFFLINE_HINT.format(why=why, then=IMPORT_BUTTON))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def check_online(timeout: float = 3.0) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise offline("HF_HUB_OFFLINE is set")
    url = urlparse(endpoint())
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise offline(f"{host}:{port}: {e.strerror or e}") from None


def _tqdm_class(progress: Progress | None, quiet: bool):
    from tqdm.auto import tqdm

    class Bar(tqdm):
        """tqdm's bar on the terminal (unless quiet), and every step passed to `progress`."""

        def __init__(self, *args, **kwargs):
            kwargs["disable"] = quiet or kwargs.get("disable", False)
            super().__init__(*args, **kwargs)
            self.done = 0  # a disabled tqdm keeps no count of its own

        def update(self, n=1):
            self.done += n or 0
            if progress is not None:
                progress("download", int(self.done), int(self.total or 0))
            return super().update(n)

    return Bar


def fetch_weights(hf_hub: str, progress: Progress | None = None, quiet: bool = False,
                  cache_dir: str | None = None) -> str:
    """Download (or find cached) the weights named by an open_clip `hf_hub` entry ('org/repo/[file]').

    Prefers the safetensors file, as open_clip does. Returns the local path.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    repo_id, filename = hf_hub.rstrip("/"), None
    if hf_hub.count("/") >= 2 and not hf_hub.endswith("/"):
        repo_id, filename = hf_hub.rsplit("/", 1)
    names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename:
        stem = filename.rsplit(".", 1)[0]
        names = [stem + ".safetensors", filename] if not filename.endswith(".safetensors") else [filename]
    for local_only in (True, False):
        if not local_only:
            check_online()
        for name in names:
            try:
                return hf_hub_download(repo_id, name, cache_dir=cache_dir, local_files_only=local_only,
                                       endpoint=endpoint(), tqdm_class=_tqdm_class(progress, quiet))
            except LocalEntryNotFoundError as e:
                if local_only:
                    continue  # not cached yet: try the network next
                raise offline(str(e).splitlines()[0][:200]) from None
            except EntryNotFoundError:
                continue  # the repository has no such file: try the next name
            except Exception as e:
                raise ModelError(f"Downloading {repo_id}/{name} failed: {str(e).splitlines()[0][:300]}") from None
    raise ModelError(f"No open_clip weights found in the Hub repository {repo_id}.")
