"""Where Glimpse keeps its data, cache and settings.

platformdirs gives each platform's usual folders; `GLIMPSE_HOME` puts all three under one folder
(for tests and portable installs): GLIMPSE_HOME/data, GLIMPSE_HOME/cache, GLIMPSE_HOME/config.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP = "Glimpse"


@dataclass(frozen=True)
class Paths:
    data: Path
    cache: Path
    config: Path

    @property
    def models(self) -> Path:
        return self.data / "models"

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    @classmethod
    def default(cls) -> "Paths":
        home = os.environ.get("GLIMPSE_HOME")
        if home:
            root = Path(home).expanduser()
            return cls(root / "data", root / "cache", root / "config")
        import platformdirs

        return cls(Path(platformdirs.user_data_dir(APP, False)), Path(platformdirs.user_cache_dir(APP, False)),
                   Path(platformdirs.user_config_dir(APP, False)))
