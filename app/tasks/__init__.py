"""Use cases: each long thing a user asks for, as one Qt-free function that both fronts call.

`pull`, `import_model`, `activate` (re-indexing a new image space), `remove_model` and `index` each
take the `Library` and a `model.jobs.Job` (progress out, cancel in) and raise errors whose message is
fit for a user (`user_message` turns any exception into one line). The CLI wraps a Job around a
terminal bar and Ctrl+C; the window runs them one at a time in its job runner. Training will join them
here, and this is the only layer that may import `training` (lazily, so torch loads only when asked).
"""
from .errors import USER_ERRORS, user_message
from .models import Obtained, activate, import_model, pull, remove_model
from .index import index

__all__ = ["USER_ERRORS", "user_message", "Obtained", "activate", "import_model", "pull", "remove_model", "index"]
