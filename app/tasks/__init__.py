"""Use cases: each long thing a user asks for, as one Qt-free function that both fronts call.

`pull`, `import_model`, `activate` (re-indexing a new image space), `remove_model` and `index` each
take the `Library` and a `model.jobs.Job` (progress out, cancel in) and raise errors whose message is
fit for a user (`user_message` turns any exception into one line). The CLI wraps a Job around a
terminal bar and Ctrl+C; the window runs them one at a time in its job runner, indexing in a child process
(`index_process`, the child being `index_child`), so decoders and the model never stall the window and a
decoder's crash does not take it down. `tune` runs fine-tuning in a child process; this is the only layer
that may import `training` (lazily, so torch loads only when asked).
"""
from .errors import USER_ERRORS, user_message
from . import tune
from .index import index
from .models import Obtained, activate, export_model, import_model, pull, remove_model

__all__ = ["USER_ERRORS", "user_message", "Obtained", "activate", "export_model", "import_model", "pull",
           "remove_model", "index", "tune"]
