"""Backends for the owner-thread runtime: juliacall (real Julia) and a fake one.

The backend is chosen by ``PYDISPATCH_JULIA_BACKEND`` (``juliacall``, the
default, or ``fake``), so a dask worker started with ``--preload
pydispatch.julia`` can be run against either.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from .convert import Tagged, TaggedKwargs, decode, encode
from .values import ConversionError, JuliaBlob, JuliaRuntimeError

__all__ = [
    "BACKEND_ENV",
    "FakeBackend",
    "FakeJuliaException",
    "JuliacallBackend",
    "backend_from_env",
    "backend_importable",
    "drop_juliacall_wrappers",
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


def backend_importable() -> bool:
    """Whether this process could start the configured backend's Julia at all.

    False when the backend is juliacall and juliacall is not installed: a worker in
    a Python environment without the ``[julia]`` extra. Does not start Julia.
    """
    name = os.environ.get(BACKEND_ENV, "juliacall").strip().lower()
    if name != "juliacall":
        return True
    return "juliacall" in sys.modules or importlib.util.find_spec("juliacall") is not None


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


#: Seconds the process-exit hook waits for the owner thread to run Julia's exit hooks.
EXIT_HOOK_WAIT = 10.0


class OwnerExitHook:
    """Stands in for juliacall's ``jl_atexit_hook`` so Julia exits on the owner thread.

    juliacall 0.9.37 registers ``atexit`` -> ``lib.jl_atexit_hook(0)``, looking the
    function up on ``CONFIG['lib']`` (a ``ctypes.PyDLL``) when Python exits
    (``juliacall/__init__.py``, ``at_jl_exit``). That runs on Python's main thread,
    while Julia's thread 1 (the one that ran ``jl_init``) is the owner thread,
    parked in Python; a GC in Julia's exit hooks then waits for it forever
    (the pattern of PythonCall.jl#578). Installed as ``lib.jl_atexit_hook``, this
    runs the real hook once, on the owner thread: when the runtime stops
    (:meth:`JuliacallBackend.stop`), or at exit by handing it to the owner and
    waiting at most :data:`EXIT_HOOK_WAIT` seconds. If the owner cannot take it
    (busy in a long Julia call, or gone), Julia's exit hooks are skipped rather than
    run from the wrong thread: finalizers then do not run, but the process exits.
    """

    def __init__(self, real: Callable[[int], Any], owner: int, wait: float = EXIT_HOOK_WAIT):
        self.real = real
        self.owner = owner
        self.wait = wait
        self.done = False
        self._lock = threading.Lock()
        self._requests: list[threading.Event] = []
        # ctypes sets these on whatever it finds as lib.jl_atexit_hook; keep them.
        self.argtypes: Any = None
        self.restype: Any = None

    def run_here(self, code: int = 0) -> None:
        """Run the real hook on this thread, once (call it on the owner thread only)."""
        with self._lock:
            if self.done:
                return
            self.done = True
        self.real(code)

    def pending(self) -> bool:
        """Whether the process's exit is waiting for the owner to run the hook."""
        with self._lock:
            return bool(self._requests)

    def serve(self) -> None:
        """On the owner thread, between calls: run the hook if exit is waiting for it."""
        with self._lock:
            waiting, self._requests = self._requests, []
        if waiting:
            try:
                self.run_here(0)
            finally:
                for event in waiting:
                    event.set()

    def __call__(self, code: int = 0) -> None:
        if threading.get_ident() == self.owner:
            self.run_here(code)
            return
        with self._lock:
            if self.done:
                return
            event = threading.Event()
            self._requests.append(event)
        event.wait(self.wait)  # bounded: never hang the process's exit


def drop_juliacall_wrappers() -> int:
    """Drop the Julia values juliacall's module holds (``Main``, ``Base``, ...); how many.

    Call it on the owner thread before Julia's exit hooks run. A juliacall wrapper's
    ``tp_dealloc`` is a Julia ``@cfunction`` (PythonCall.jl src/JlWrap/C.jl,
    ``_pyjl_dealloc``). Left in the module, these wrappers would be freed during
    Python's finalization, on the main thread (not the one that started Julia)
    and after Julia's exit hooks ran. PythonCall puts ``ValueBase`` (the wrappers'
    base type) and ``Core``/``Base``/``Main``/``PythonCall`` on the module
    (src/JlWrap/base.jl, src/JlWrap/JlWrap.jl ``__init__``); juliacall caches
    ``_newmodule``/``_convert`` there. Wrappers held elsewhere (by user code) are
    not reachable from here.
    """
    juliacall = sys.modules.get("juliacall")
    base = getattr(juliacall, "ValueBase", None)
    if juliacall is None or not isinstance(base, type):
        return 0
    names = [k for k, v in list(vars(juliacall).items()) if isinstance(v, base)]
    for name in names:
        setattr(juliacall, name, None)
    return len(names)


class JuliacallBackend:
    """Real Julia through juliacall; juliacall is imported on the owner thread only."""

    name = "juliacall"
    restartable = False  # juliacall runs jl_init once per process

    def __init__(self) -> None:
        self._invoke: Any = None
        self._idle: Any = None
        self.exit_hook: OwnerExitHook | None = None

    def start(self) -> None:
        if "juliacall" in sys.modules:
            raise JuliaRuntimeError(
                "juliacall is already imported in this process, so Julia was started on "
                "another thread; Julia calls must all come from the pydispatch owner thread. "
                "Run Julia functions on a worker process (pydispatch worker ADDRESS --julia) "
                "instead of in a process that imported juliacall itself"
            )
        # One Julia thread unless the user asked for more: juliacall passes
        # --handle-signals=no by default, and warns that several threads without
        # signal handling may crash (juliacall/__init__.py, init()).
        os.environ.setdefault("PYTHON_JULIACALL_THREADS", "1")
        # juliacall does nothing on import when this is "no", and PythonCall sets it
        # in a Python embedded in Julia (PythonCall.jl src/Core/juliacall.jl); a
        # worker must start its own Julia.
        if os.environ.get("PYTHON_JULIACALL_INIT", "").strip().lower() == "no":
            del os.environ["PYTHON_JULIACALL_INIT"]
        try:
            import juliacall
        except ImportError as exc:
            raise JuliaRuntimeError(
                "juliacall is not installed: pip install 'pydispatch-dask[julia]'"
            ) from exc
        lib = juliacall.CONFIG.get("lib")
        if lib is not None:
            self.exit_hook = OwnerExitHook(lib.jl_atexit_hook, threading.get_ident())
            lib.jl_atexit_hook = self.exit_hook
        main = juliacall.Main
        main.seval("import DispatchBridge")
        self._invoke = main.seval("DispatchBridge.invoke_task")
        self._idle = main.seval("DispatchBridge.idle")

    def call(self, spec: tuple[Any, ...], args: list[Tagged], kwargs: TaggedKwargs) -> Tagged:
        result = self._invoke(_Box((spec, args, kwargs)))
        if not isinstance(result, tuple):  # a juliacall wrapper would mean a bridge bug
            raise ConversionError(
                f"DispatchBridge.invoke_task returned {type(result).__name__}, not a tagged tuple"
            )
        return result

    def idle(self) -> None:
        if self.exit_hook is not None and self.exit_hook.pending():
            # The process is exiting: drop the wrappers while Julia still runs (their
            # dealloc enters Julia), run Julia's exit hooks here, and stop serving.
            self._invoke = self._idle = None
            drop_juliacall_wrappers()
            self.exit_hook.serve()
            raise JuliaRuntimeError("Julia exited (the process is exiting)")
        self._idle()

    def stop(self) -> None:
        # Dropping the wrappers enters Julia: it happens here, on the owner thread,
        # before Julia's exit hooks run.
        self._invoke = self._idle = None
        drop_juliacall_wrappers()
        if self.exit_hook is not None:
            # Julia's exit hooks (finalizers, atexit functions) run here, on the
            # thread that started Julia; juliacall's own atexit call is then a no-op.
            self.exit_hook.run_here(0)


class FakeJuliaException(Exception):
    """Raised by fake Julia functions to look like a Julia exception of ``jltype``."""

    def __init__(self, jltype: str, message: str) -> None:
        super().__init__(jltype, message)
        self.jltype = jltype
        self.message = message


def _usleep(seconds: float, *, hold_gil: bool) -> float:
    # A C call, as a Julia call is: through ctypes.CDLL it releases the GIL, as
    # DispatchBridge does around Julia work; through ctypes.PyDLL it keeps the GIL
    # held for the whole call, as a juliacall call that did not release it would.
    libc = (ctypes.PyDLL if hold_gil else ctypes.CDLL)(None)
    whole = int(seconds)
    if whole:
        libc.sleep(ctypes.c_uint(whole))  # one call: the GIL is not handed over midway
    libc.usleep(ctypes.c_uint(int((seconds - whole) * 1e6)))
    return seconds


def _spin(seconds: float) -> float:
    """A long "Julia" call that releases the GIL (what DispatchBridge does)."""
    return _usleep(seconds, hold_gil=False)


def _spin_holding_gil(seconds: float) -> float:
    """A long "Julia" call that keeps the GIL (what the bridge must never do)."""
    return _usleep(seconds, hold_gil=True)


def _julia_error(message: str) -> Any:
    raise FakeJuliaException("ErrorException", message)


def _getindex(value: Any, index: Any) -> Any:
    """Julia's ``getindex`` for the fake: 1-based for sequences, by key for dicts."""
    if isinstance(value, dict):
        return value[index]
    if not 1 <= index <= len(value):
        raise FakeJuliaException(
            "BoundsError", f"BoundsError: attempt to access at index [{index}]"
        )
    return value[index - 1]


#: The fake backend's "Julia": qualified name (or serialized bytes as text) -> Python callable.
DEFAULT_FAKE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Base.max": max,
    "Base.min": min,
    "Base.+": lambda *xs: sum(xs[1:], xs[0]),
    "Base.sum": sum,
    "Base.string": lambda *xs: "".join(str(x) for x in xs),
    "Base.error": _julia_error,
    "Base.getindex": _getindex,
    "Base.Threads.threadid": lambda: threading.get_ident(),
    "Main.spin": _spin,
    "Main.spin_holding_gil": _spin_holding_gil,
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
    restartable = True

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

    def call(self, spec: tuple[Any, ...], args: list[Tagged], kwargs: TaggedKwargs) -> Tagged:
        self._seen()
        if spec[0] == "eval":
            return self._eval(bytes(spec[1]), str(spec[2]))
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

    def _eval(self, code: bytes, origin: str) -> Tagged:
        """An ``@everywhere`` block: here Python source; what it defines becomes ``Main.*``."""
        self.calls.append(f"eval:{origin}")
        namespace: dict[str, Any] = {}
        try:
            exec(compile(code.decode("utf-8"), origin, "exec"), namespace)
        except Exception as exc:
            return ("error", type(exc).__name__, str(exc), traceback.format_exc(), None)
        for name, value in namespace.items():
            if callable(value) and not name.startswith("__"):
                self.functions[f"Main.{name}"] = value
        return ("nothing",)

    def idle(self) -> None:
        self._seen()

    def stop(self) -> None:
        self._seen()
        self.stopped.set()
