"""User settings, a JSON file written atomically. Unknown keys are kept; a damaged file is set aside."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "active_model": None,
    "provider": "auto",  # auto | cuda | cpu
    "folders": [],       # watched roots, absolute paths
    "exclude": [],       # glob patterns on names or relative paths, besides hidden and known folders
    "watch": True,
    "exact_search_limit": 50_000,  # photos searched exactly in memory; more use the ANN index
    "gui": {},           # the window's own state (geometry, sort, theme), owned by app.gui
}


class Settings:
    def __init__(self, path: Path):
        self.path = path
        self._data = dict(DEFAULTS)
        self._lock = threading.Lock()  # the window writes from its thread and from workers
        self.warning: str | None = None
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict):
                raise ValueError("not a JSON object")
            self._data.update(loaded)
        except FileNotFoundError:
            pass
        except (ValueError, OSError) as e:
            backup = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            try:
                os.replace(path, backup)
            except OSError:
                backup = path
            self.warning = f"Settings file {path} was unreadable ({e}); kept as {backup.name}, using defaults."

    def __getitem__(self, key: str) -> Any:
        return self._data.get(key, DEFAULTS.get(key))

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._save()

    def save(self) -> None:
        with self._lock:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self._data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
