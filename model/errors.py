"""Errors the model layer raises. Each carries a message fit to show a user as is."""


class ModelError(Exception):
    """Base class: something about a model is wrong; the message says what to do."""


class ModelNotFound(ModelError):
    pass


class CorruptModel(ModelError):
    pass


class OfflineError(ModelError):
    """No network for a download. `window_message` says the same naming the window's button, not a command."""

    def __init__(self, message: str, window_message: str | None = None):
        super().__init__(message)
        self.window_message = window_message or message


class ExportError(ModelError):
    pass


class ImportError_(ModelError):
    """A model folder or file that cannot be imported (named so as not to shadow ImportError)."""



class ModelExists(ModelError):
    """A model of that name is installed already."""
