"""Functions travel to workers by value when workers could not import them.

dask pickles a task's function by reference (module + name) whenever plain
pickle can, so a function from a user's script or test module fails on a
worker that cannot import that module. Such functions are wrapped in
`ByValue`, which carries them as cloudpickle bytes; a worker unpickles each
function once. Functions of installed packages still travel by reference.

Functions are pickled with `pydispatch.pickling.dumps`, which keeps the file
name of every code object cloudpickle would replace with ``<dynamic-code>``,
so tracebacks from the workers show the user's file, line and source text.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
import threading
import weakref
from collections.abc import Callable
from typing import Any, Literal

import cloudpickle

from ..pickling import dumps

ShipMode = Literal["auto", "always", "never"]
SHIP_MODES = ("auto", "always", "never")
_INSTALLED_ROOTS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_LOADED: dict[str, Callable[..., Any]] = {}
_LOADED_LOCK = threading.Lock()


def _module_is_installed(module_name: str) -> bool:
    if module_name == "__main__":
        return False
    top = module_name.partition(".")[0]
    if top in sys.builtin_module_names or top in ("pydispatch", "builtins"):
        return True
    module = sys.modules.get(module_name)
    if module is None:  # e.g. the file `pydispatch run` ran: no worker can import it
        return False
    path = getattr(module, "__file__", None)
    if path is None:
        return True
    return _is_installed_path(path)


@functools.lru_cache(maxsize=4096)
def _is_installed_path(path: str) -> bool:
    """Whether the module file `path` lies in site-packages or the standard library.

    Cached: shipping a function asks this of every loaded module (see `_user_modules`).
    """
    return os.path.realpath(path).startswith(_INSTALLED_ROOTS)


def needs_shipping(func: Any, mode: ShipMode) -> bool:
    """Whether `func` should travel by value under `mode`."""
    if mode == "never":
        return False
    module = getattr(func, "__module__", None)
    if not isinstance(module, str):
        return False
    return mode == "always" or not _module_is_installed(module)


class ByValue:
    """A function carried as cloudpickle bytes; calling it calls the function."""

    __slots__ = ("__weakref__", "digest", "name", "payload")

    def __init__(self, payload: bytes, name: str):
        self.payload = payload
        self.name = name
        self.digest = hashlib.sha1(payload).hexdigest()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        func = _LOADED.get(self.digest)
        if func is None:
            with _LOADED_LOCK:
                func = _LOADED.get(self.digest)
                if func is None:
                    func = _LOADED[self.digest] = cloudpickle.loads(self.payload)
        return func(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.payload, self.name, self.digest))

    def __repr__(self) -> str:
        return f"ByValue({self.name})"


def _rebuild(payload: bytes, name: str, digest: str) -> ByValue:
    shipped = ByValue.__new__(ByValue)
    shipped.payload, shipped.name, shipped.digest = payload, name, digest
    return shipped


def _user_modules(module_name: str) -> list[Any]:
    """The loaded modules no worker can be assumed to import: `module_name`'s, and every
    other module of the user's own code (not an installed package nor the stdlib)."""
    found = []
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None or getattr(module, "__file__", None) is None:
            continue
        if name == module_name or not _module_is_installed(name):
            found.append(module)
    return found


def _dumps_by_value(func: Callable[..., Any], module_name: str) -> bytes:
    """cloudpickle `func` with its module's code inside, even if this process can import it.

    What `func` refers to in the user's other modules (a helper, an exception class)
    travels by value too: a worker could import those no more than `func`'s own.
    """
    registered = set(cloudpickle.list_registry_pickle_by_value())
    added = [m for m in _user_modules(module_name) if m.__name__ not in registered]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        return dumps(func)
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


class Shipper:
    """Wraps functions for one graph; each function is pickled once."""

    def __init__(self, mode: ShipMode = "auto"):
        if mode not in SHIP_MODES:
            raise ValueError(f"ship_functions must be one of {SHIP_MODES}, got {mode!r}")
        self.mode = mode
        self._done: weakref.WeakKeyDictionary[Any, ByValue] = weakref.WeakKeyDictionary()
        self._verdicts: dict[str, bool] = {}

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        module = getattr(func, "__module__", None)
        if self.mode == "never" or not isinstance(module, str):
            return func
        verdict = self._verdicts.get(module)
        if verdict is None:
            verdict = self._verdicts[module] = needs_shipping(func, self.mode)
        if not verdict:
            return func
        try:
            shipped = self._done.get(func)
        except TypeError:
            shipped = None
        if shipped is None:
            shipped = ByValue(_dumps_by_value(func, module), getattr(func, "__name__", repr(func)))
            try:
                self._done[func] = shipped
            except TypeError:
                pass
        return shipped
