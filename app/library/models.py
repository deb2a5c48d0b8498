"""The user's models: the store under the data folder, and which one is active (in settings)."""
from __future__ import annotations

from model.errors import ModelError, ModelNotFound
from model.runtime import Encoder
from model.store import ModelStore, StoredModel

from .paths import Paths
from .settings import Settings


class Models:
    def __init__(self, paths: Paths, settings: Settings):
        self.paths = paths
        self.settings = settings
        self.store = ModelStore(paths.models)

    @property
    def active_id(self) -> str | None:
        return self.settings["active_model"]

    def active(self) -> StoredModel:
        model_id = self.active_id
        if not model_id:
            raise ModelError("No model yet. Get one with `glimpse models pull` "
                             "(or `glimpse models import PATH` without internet).")
        try:
            return self.store.get(model_id)
        except ModelNotFound:
            raise ModelError(f"The active model '{model_id}' is no longer installed. "
                             "Choose one with `glimpse models use NAME`.") from None

    def use(self, model_id: str) -> StoredModel:
        model = self.store.get(model_id)
        model.verify()
        self.settings["active_model"] = model_id
        return model

    def adopt(self, model: StoredModel) -> bool:
        """Make a newly installed model active if none is. Returns whether it became active."""
        if self.active_id and self.store.exists(self.active_id):
            return self.active_id == model.id
        self.settings["active_model"] = model.id
        return True

    def remove(self, model_id: str) -> None:
        self.store.remove(model_id)
        if self.active_id == model_id:
            self.settings["active_model"] = None

    def encoder(self) -> Encoder:
        return Encoder(self.active(), provider=self.settings["provider"])
