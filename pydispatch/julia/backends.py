"""Backends for the owner-thread runtime: juliacall (real Julia) and a fake one.

The backend is chosen by ``PYDISPATCH_JULIA_BACKEND`` (``juliacall``, the
default, or ``fake``), so a dask worker started with ``--preload
pydispatch.julia`` can be run against either.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from .convert import Tagged, decode, encode
from .values import ConversionError, JuliaBlob, JuliaRuntimeError

__all__ = [
    "BACKEND_ENV",
    "FakeBackend",
    "FakeJuliaException",
    "JuliacallBackend",
    "backend_from_env",
]

BACKEND_ENV = "PYDISPATCH_JULIA_BACKEND"
FAKE_FUNCTIONS_ENV = "PYDISPATCH_JULIA_FAKE_FUNCTIONS"


def backend_from_env() -> Any:
    """The backend named by ``$PYDISPATCH_JULIA_BACKEND`` (default ``juliacall``)."""
    name = os.environ.get(BACKEND_ENV, "juliacall").strip().lower()
    if name == "juliacall":
        return JuliacallBackend()
    if name == "fake":
        extra = os.environ.get(FAKE_FUNCTIONS_ENV)
        return FakeBackend(_load_object(extra) if extra else None)
    raise JuliaRuntimeError(f"{BACKEND_ENV}={name!r}: expected 'juliacall' or 'fake'")


def _load_object(path: str) -> Any:
    module, _, attr = path.partition(":")
    if not attr:
        raise JuliaRuntimeError(f"{FAKE_FUNCTIONS_ENV}={path!r}: expected 'module:attribute'")
    return getattr(importlib.import_module(module), attr)


class _Box:
    """Hands a Python object to Julia as a ``Py`` (juliacall does not convert plain objects)."""

    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


class JuliacallBackend:
    """Real Julia through juliacall; juliacall is imported on the owner thread only."""

    name = "juliacall"

    def __init__(self) -> None:
        self._invoke: Any = None
        self._idle: Any = None

    def start(self) -> None:
        if "juliacall" in sys.modules:
            raise JuliaRuntimeError(
                "juliacall is already imported in this process, so Julia was started on "
                "another thread; Julia calls must all come from the pydispatch owner thread. "
                "Run Julia functions on a worker process (pydispatch worker ADDRESS --julia) "
                "instead of in a process that imported juliacall itself"
            )
        try:
            import juliacall
        except ImportError as exc:
            raise JuliaRuntimeError(
                "juliacall is not installed: pip install 'pydispatch-dask[julia]'"
            ) from exc
        main = juliacall.Main
        main.seval("import DispatchBridge")
        self._invoke = main.seval("DispatchBridge.invoke_task")
        self._idle = main.seval("DispatchBridge.idle")

    def call(
        self, spec: tuple[Any, ...], args: list[Tagged], kwargs: list[tuple[str, Tagged]]
    ) -> Tagged:
        result = self._invoke(_Box((spec, args, kwargs)))
        if not isinstance(result, tuple):  # a juliacall wrapper would mean a bridge bug
            raise ConversionError(
                f"DispatchBridge.invoke_task returned {type(result).__name__}, not a tagged tuple"
            )
        return result

    def idle(self) -> None:
        self._idle()

    def stop(self) -> None:
        # Dropping the wrappers enters Julia: it happens here, on the owner thread.
        self._invoke = self._idle = None


class FakeJuliaException(Exception):
    """Raised by fake Julia functions to look like a Julia exception of ``jltype``."""

    def __init__(self, jltype: str, message: str) -> None:
        super().__init__(jltype, message)
        self.jltype = jltype
        self.message = message


def _spin(seconds: float) -> float:
    """Busy for ``seconds`` (a stand-in for a long Julia computation)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)
    return seconds


def _julia_error(message: str) -> Any:
    raise FakeJuliaException("ErrorException", message)


#: The fake backend's "Julia": qualified name (or serialized bytes as text) -> Python callable.
DEFAULT_FAKE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Base.max": max,
    "Base.min": min,
    "Base.+": lambda *xs: sum(xs[1:], xs[0]),
    "Base.sum": sum,
    "Base.string": lambda *xs: "".join(str(x) for x in xs),
    "Base.error": _julia_error,
    "Base.Threads.threadid": lambda: threading.get_ident(),
    "Main.spin": _spin,
    "Main.identity_blob": lambda x: x,
}


class FakeBackend:
    """A pure-Python stand-in for Julia behind the same interface, for tests.

    It resolves ``ref`` functions by qualified name and ``serialized`` ones by
    their bytes (as UTF-8 text) in ``functions``; decodes arguments and encodes
    results with the same tagged trees as the real bridge; turns exceptions into
    tagged errors as ``DispatchBridge.invoke`` does; and records the thread of
    every backend call in ``threads``.
    """

    name = "fake"

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.functions: dict[str, Callable[..., Any]] = dict(DEFAULT_FAKE_FUNCTIONS)
        self.functions.update(functions or {})
        self.threads: set[int] = set()
        self.calls: list[str] = []
        self.started = threading.Event()
        self.stopped = threading.Event()

    def _seen(self) -> None:
        self.threads.add(threading.get_ident())

    def start(self) -> None:
        self._seen()
        self.started.set()

    def call(
        self, spec: tuple[Any, ...], args: list[Tagged], kwargs: list[tuple[str, Tagged]]
    ) -> Tagged:
        self._seen()
        key = spec[1] if spec[0] == "ref" else bytes(spec[2]).decode("utf-8", "replace")
        self.calls.append(key)
        fn = self.functions.get(key)
        if fn is None:
            return ("error", "UndefVarError", f"UndefVarError: `{key}` not defined", "", None)
        try:
            value = fn(*[decode(a) for a in args], **{k: decode(v) for k, v in kwargs})
        except FakeJuliaException as exc:
            return ("error", exc.jltype, exc.message, traceback.format_exc(), None)
        except Exception as exc:
            return ("error", type(exc).__name__, str(exc), traceback.format_exc(), None)
        try:
            return encode(value)
        except ConversionError:
            return encode(JuliaBlob(repr(value).encode(), type(value).__name__))

    def idle(self) -> None:
        self._seen()

    def stop(self) -> None:
        self._seen()
        self.stopped.set()
