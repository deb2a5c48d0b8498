"""What every command needs: the data folders, the settings, the models."""
from __future__ import annotations

import sys
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when first used: `glimpse --version` and `--help` open nothing
    from app.library.library import Library
    from app.library.models import Models
    from app.library.paths import Paths
    from app.library.settings import Settings


class Context:
    @cached_property
    def paths(self) -> Paths:
        from app.library.paths import Paths

        return Paths.default()

    @cached_property
    def settings(self) -> Settings:
        from app.library.settings import Settings

        s = Settings(self.paths.settings_file)
        if s.warning:
            print(f"glimpse: {s.warning}", file=sys.stderr)
        return s

    @cached_property
    def models(self) -> Models:
        return self.library.models

    @cached_property
    def library(self) -> Library:
        from app.library.library import Library

        return Library(self.paths, self.settings)


