"""The user's models: the store under the data folder, which one is active (answers searches), and
which one is next (its image space being indexed before it takes over; see `library`)."""
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
        if not model_id or not self.store.exists(model_id):
            self.settings.reload(report=False)  # another process may have removed it and chosen another
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
        """Make a model active now, whatever vectors exist (fronts call `Library.activate`, which indexes
        a new image space before switching to it)."""
        model = self.store.get(model_id)
        model.verify()
        self.set_active(model_id)
        return model

    def active_or_none(self) -> StoredModel | None:
        """The active model, or None when there is none or it cannot be opened."""
        try:
            return self.active()
        except ModelError:
            return None

    def next(self) -> StoredModel | None:
        """The model whose image space is being indexed before it becomes active, if any."""
        model_id = self.settings["next_model"]
        if not model_id:
            return None
        try:
            return self.store.get(model_id)
        except ModelError:
            return None

    def set_active(self, model_id: str) -> None:
        self.settings["active_model"] = model_id
        if self.settings["next_model"]:
            self.settings["next_model"] = None

    def set_next(self, model_id: str) -> None:
        self.settings["next_model"] = model_id

    def switch_to_next(self, expected: str) -> bool:
        """Make `expected` active if it is still the next model and installed (another thread or process
        may have changed that while its vectors were made). Returns whether it did."""
        self.settings.reload()
        if self.settings["next_model"] != expected or not self.store.exists(expected):
            return False
        self.set_active(expected)
        return True

    def adopt(self, model: StoredModel) -> bool:
        """Make a newly installed model active if none is. Returns whether it became active."""
        if self.active_id and self.store.exists(self.active_id):
            return self.active_id == model.id
        self.set_active(model.id)
        return True

    def remove(self, model_id: str) -> None:
        self.store.remove(model_id)
        if self.active_id == model_id:
            self.settings["active_model"] = None
        if self.settings["next_model"] == model_id:
            self.settings["next_model"] = None

    def encoder(self, model: StoredModel | None = None) -> Encoder:
        """An encoder for `model` (the active one by default), on the provider and tower the settings ask for."""
        return Encoder(model or self.active(), provider=self.settings["provider"],
                       int8=bool(self.settings["int8_image_tower"]))
