"""`import lancedb` without the REST client it never uses here.

lancedb imports `lance_namespace`, which imports the models of `lance_namespace_urllib3_client`; that
package's `__init__` also imports its REST API classes, whose ~370 pydantic `validate_call` methods
cost about half of `import lancedb` (0.55 s of 1.2 s on 2 cores). Glimpse opens a local folder, so the
package is registered with its submodules importable and its `__init__` run only when a name of its
own is first asked for (then it is the real package, as before).
"""
from __future__ import annotations

import importlib.util
import sys
import threading
import types

REST_CLIENT = "lance_namespace_urllib3_client"


class _DeferredPackage(types.ModuleType):
    """A package whose `__init__` runs on the first attribute it does not have yet."""

    _lock = threading.Lock()

    def __getattr__(self, name: str):
        with _DeferredPackage._lock:
            if type(self) is _DeferredPackage:
                self.__class__ = types.ModuleType
                self.__spec__.loader.exec_module(self)
        return getattr(self, name)


def _defer_rest_client() -> None:
    if REST_CLIENT in sys.modules:
        return
    spec = importlib.util.find_spec(REST_CLIENT)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = _DeferredPackage(REST_CLIENT)
    package.__spec__, package.__loader__, package.__file__ = spec, spec.loader, spec.origin
    package.__path__, package.__package__ = list(spec.submodule_search_locations), REST_CLIENT
    sys.modules[REST_CLIENT] = package


def import_lancedb():
    """The `lancedb` module (imported once per process)."""
    if "lancedb" not in sys.modules:
        _defer_rest_client()
    import lancedb

    return lancedb
