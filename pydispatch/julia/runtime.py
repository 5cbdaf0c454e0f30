"""The owner-thread runtime: one thread per process runs every Julia call.

Calling Julia from dask's executor threads can hang the process: Julia adopts
each foreign thread that calls it, and a GC started on one waits for the thread
that started Julia, which is busy elsewhere (JuliaPy/PythonCall.jl issue #578,
"Julia GC triggered from a python thread causes hangs"; Julia's embedding manual,
``doc/src/manual/embedding.md``, shows every call made from one thread). So
exactly one thread, the *owner*, starts Julia
(through a :class:`Backend`) and makes every Julia call. Other threads hand it
work through a FIFO queue and wait on a ``concurrent.futures.Future``. Only
tagged trees (plain Python data) cross between the owner and other threads.
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from concurrent.futures import Future
from typing import Any, Protocol

from .convert import Tagged, TaggedKwargs, decode_result, encode, encode_kwargs
from .values import JuliaRuntimeError, JuliaTaskError


class Runnable(Protocol):
    """What the runtime runs: a :class:`JuliaFunction` or a :class:`JuliaCode` block."""

    def spec(self) -> tuple[Any, ...]: ...


__all__ = [
    "Backend",
    "JuliaRuntime",
    "current_runtime",
    "get_runtime",
    "start_runtime",
    "stop_runtime",
]


class Backend(Protocol):
    """What the runtime needs from a Julia implementation.

    Every method is called on the owner thread only. ``call`` receives the
    function's :meth:`JuliaFunction.spec` (or a block's ``("eval", ...)`` spec)
    and tagged arguments and returns a tagged result (or a tagged
    ``("error", ...)``); it must return only plain Python data, never an object
    that wraps Julia memory. ``restartable`` (default true) says whether a new
    runtime may start with this backend after one stopped or failed in the same
    process: juliacall cannot start Julia twice.
    """

    name: str

    def start(self) -> None:
        """Start Julia (on the calling thread, the owner)."""

    def call(self, spec: tuple[Any, ...], args: list[Tagged], kwargs: TaggedKwargs) -> Tagged:
        """Run one Julia call and return its tagged result."""
        ...

    def idle(self) -> None:
        """Called when the queue has been empty for a while (let Julia tasks run)."""

    def stop(self) -> None:
        """Release Julia resources (the runtime will make no more calls)."""


_STOP = object()


class JuliaRuntime:
    """Runs Julia calls on one dedicated owner thread, in submission order."""

    def __init__(
        self, backend: Backend, *, idle_interval: float = 0.05, name: str = "pydispatch-julia"
    ) -> None:
        self.backend = backend
        self.idle_interval = idle_interval
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.ready: Future[None] = Future()
        self.pid = os.getpid()
        #: Why the runtime ended, when it was not an orderly stop (the failed start,
        #: or what killed the owner thread).
        self.failure: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------
    def start(self, timeout: float | None = None) -> JuliaRuntime:
        """Start the owner thread and wait (up to ``timeout`` s) until Julia is up."""
        with self._lock:
            if self._closed:
                raise self._closed_error("this Julia runtime was stopped")
            if self._thread.ident is None:
                self._thread.start()
        self.ready.result(timeout)  # raises JuliaRuntimeError if the backend failed
        return self

    def _closed_error(self, what: str) -> JuliaRuntimeError:
        if self.failure is None:
            return JuliaRuntimeError(f"{what}; no more Julia calls in this process")
        err = JuliaRuntimeError(f"{what}: {_describe(self.failure)}")
        err.__cause__ = self.failure
        return err

    @property
    def thread_id(self) -> int | None:
        """The owner thread's ``threading.get_ident()`` (``None`` before start)."""
        return self._thread.ident

    @property
    def running(self) -> bool:
        """True while the runtime accepts calls."""
        return (
            self.ready.done()
            and self.ready.exception() is None
            and not self._closed
            and self._thread.is_alive()
        )

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop accepting calls, fail every queued call, stop the owner thread.

        A call already running on the owner is allowed to finish (Julia cannot
        be interrupted from Python); ``timeout`` bounds the wait for it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = self._drain()
            self._queue.put(_STOP)
        for fut in pending:
            fut.set_exception(
                JuliaRuntimeError(
                    "the Julia runtime was shut down before this call ran "
                    "(the worker is closing); resubmit it to a running worker"
                )
            )
        if self._thread.is_alive() and threading.get_ident() != self._thread.ident:
            self._thread.join(timeout)

    def _drain(self) -> list[Future[Any]]:
        out: list[Future[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if item is not _STOP and item[0].set_running_or_notify_cancel():
                out.append(item[0])

    # -- calls ----------------------------------------------------------------
    def submit(
        self, func: Runnable, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Future[Any]:
        """Queue ``func(*args, **kwargs)`` for the owner thread; return its future.

        Arguments are converted (:func:`pydispatch.julia.convert.encode`) here,
        on the calling thread, so a value Julia cannot take fails at once.
        """
        eargs = [encode(a) for a in args]
        ekwargs = encode_kwargs(kwargs or {})
        fut: Future[Any] = Future()
        if threading.get_ident() == self._thread.ident:
            # Re-entrant call from Julia code running on the owner: run inline
            # (queueing it would deadlock the owner on itself).
            fut.set_running_or_notify_cancel()
            self._run(fut, func.spec(), eargs, ekwargs)
            return fut
        with self._lock:
            if self._closed:
                raise self._closed_error("the Julia runtime is shut down")
            self._queue.put((fut, func.spec(), eargs, ekwargs))
        return fut

    def call(
        self, func: Runnable, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        """Run ``func(*args, **kwargs)`` on the owner thread and return the result."""
        if not self.ready.done():
            self.start()
        return self.submit(func, args, kwargs).result()

    # -- the owner thread -------------------------------------------------------
    def _serve(self) -> None:
        try:
            self.backend.start()
        except BaseException as exc:
            err = JuliaRuntimeError(
                f"starting Julia ({self.backend.name} backend) failed: {exc!r}. "
                "Check that Julia and the DispatchBridge package are installed "
                "(see the pydispatch README, 'Julia')"
            )
            err.__cause__ = exc
            with self._lock:
                self.failure = exc
                self._closed = True
                pending = self._drain()
            self.ready.set_exception(err)
            for fut in pending:
                fut.set_exception(err)
            return
        self.ready.set_result(None)
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.idle_interval)
                except queue.Empty:
                    self.backend.idle()
                    continue
                if item is _STOP:
                    break
                fut, spec, eargs, ekwargs = item
                if fut.set_running_or_notify_cancel():
                    self._run(fut, spec, eargs, ekwargs)
        except BaseException as exc:
            # The owner must never die silently: later calls would wait forever.
            self._die(exc)
        finally:
            try:
                self.backend.stop()
            except BaseException as exc:
                if self.failure is None:
                    self.failure = exc

    def _die(self, exc: BaseException) -> None:
        err = JuliaRuntimeError(f"the Julia owner thread stopped on an error: {_describe(exc)}")
        err.__cause__ = exc
        with self._lock:
            self.failure = exc
            self._closed = True
            pending = self._drain()
        for fut in pending:
            fut.set_exception(err)

    def _run(
        self,
        fut: Future[Any],
        spec: tuple[Any, ...],
        eargs: list[Tagged],
        ekwargs: TaggedKwargs,
    ) -> None:
        try:
            value = decode_result(self.backend.call(spec, eargs, ekwargs))
        except JuliaTaskError as exc:
            fut.set_exception(exc)
        except BaseException as exc:
            # Anything else (a juliacall error, a bridge bug) is flattened to text
            # on the owner thread: its repr/pickle must never run elsewhere.
            fut.set_exception(
                JuliaTaskError(
                    f"{type(exc).__module__}.{type(exc).__qualname__}",
                    _describe(exc, with_type=False),
                    _format_traceback(exc),
                )
            )
        else:
            fut.set_result(value)


def _describe(exc: BaseException, *, with_type: bool = True) -> str:
    """``str(exc)`` that cannot fail (a broken ``__str__`` must not kill the owner)."""
    try:
        text = str(exc)
    except BaseException:
        text = "<the exception's message could not be computed>"
    return f"{type(exc).__name__}: {text}" if with_type else text


def _format_traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:
        return ""


# -- the process-wide runtime ------------------------------------------------
_runtime: JuliaRuntime | None = None
_runtime_lock = threading.Lock()
#: Set when a runtime whose backend cannot restart (juliacall) stopped or failed:
#: every later start in this process raises it again, with the original cause.
_ended: JuliaRuntimeError | None = None


def current_runtime() -> JuliaRuntime | None:
    """This process's runtime if one was started (and not stopped), else None."""
    rt = _runtime
    if rt is None or rt.pid != os.getpid() or rt._closed:
        return None
    return rt


def _note_end(rt: JuliaRuntime) -> None:
    """Make the end of a non-restartable runtime permanent for this process."""
    global _ended
    if rt.pid != os.getpid() or getattr(rt.backend, "restartable", True):
        return
    if _ended is None:
        why = "failed" if rt.failure is not None else "was stopped"
        cause = f": {_describe(rt.failure)}" if rt.failure is not None else ""
        _ended = JuliaRuntimeError(
            f"Julia ({rt.backend.name} backend) {why} in this process{cause}; it cannot "
            "start again in the same process (juliacall starts Julia once): restart the "
            "worker process"
        )
        _ended.__cause__ = rt.failure


def start_runtime(backend: Backend | None = None, timeout: float | None = None) -> JuliaRuntime:
    """Start this process's runtime (idempotent); ``backend`` defaults to the env's.

    After a runtime whose backend cannot restart (juliacall) stopped or failed,
    this raises the original failure again instead of starting Julia twice.
    """
    global _runtime
    with _runtime_lock:
        old = _runtime
        if old is not None and old.pid == os.getpid() and old._closed:
            _note_end(old)
        rt = current_runtime()
        if rt is None:
            if _ended is not None:
                raise _ended
            from .backends import backend_from_env

            rt = _runtime = JuliaRuntime(backend if backend is not None else backend_from_env())
        elif backend is not None and backend is not rt.backend:
            raise JuliaRuntimeError(
                "a Julia runtime with another backend already runs in this process"
            )
    return rt.start(timeout)


def get_runtime() -> JuliaRuntime:
    """This process's running runtime, started on first use."""
    rt = current_runtime()
    if rt is not None and rt.ready.done():
        rt.ready.result()
        if not rt.running:
            raise rt._closed_error("the Julia runtime stopped")
        return rt
    return start_runtime()


def stop_runtime(timeout: float | None = 10.0) -> None:
    """Stop this process's runtime, failing queued calls (no-op without one)."""
    global _runtime
    with _runtime_lock:
        rt, _runtime = _runtime, None
    if rt is not None and rt.pid == os.getpid():
        rt.stop(timeout)
        with _runtime_lock:
            _note_end(rt)
