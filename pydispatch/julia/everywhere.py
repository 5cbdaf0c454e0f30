"""Code that every worker's Julia runs: the ``@everywhere`` of pydispatch.

Julia's ``Serialization`` sends the code of *anonymous* functions defined in
``Main`` only: a named ``Main`` function, a non-constant ``Main`` global, or a
module a ``Main`` closure uses through ``using`` travels as a bare name, which a
worker's ``Main`` does not have (Julia's ``stdlib/Serialization``,
``should_send_whole_type`` and ``serialize(::AbstractSerializer, ::GlobalRef)``).
As with Distributed's ``@everywhere``, such definitions must run on every
worker's Julia first.

``DispatchBridge.@everywhere`` (Julia) evaluates a block in the client's ``Main``
and records it here, as a :class:`JuliaCode` with the ``Main`` names it defines.
Every dask client the Julia session runs graphs with gets one
:class:`EverywherePlugin` holding all blocks, in order. dask runs a worker
plugin's ``setup`` on every worker that is connected when it is registered and
on every worker that joins (or restarts) later, before that worker takes tasks
(``distributed.Worker._register_with_scheduler`` adds the plugins before it
handles scheduler messages). ``setup`` evaluates the blocks this process has not
evaluated yet on the Julia owner thread.

Before a graph is submitted, :func:`check_available` rejects every Julia
function that needs a ``Main`` name no block defines: the run fails at once,
naming the function, instead of failing later on a worker with
``UndefVarError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .values import UnavailableFunctionError

logger = logging.getLogger(__name__)

__all__ = [
    "EverywherePlugin",
    "JuliaCode",
    "add_block",
    "attach",
    "available_names",
    "blocks",
    "check_available",
    "clear",
    "record_value_needs",
]


class JuliaCode:
    """A block of Julia code for every worker: serialized ``Expr`` bytes.

    ``names`` are the ``Main`` names the block defines (computed by Julia when it
    evaluated the block locally); ``text`` is for messages only. ``spec()`` is
    what ``DispatchBridge.invoke_task`` reads: ``("eval", data, origin, nogil)``.
    The code runs with the GIL held (``nogil`` false), as it may load packages
    whose ``__init__`` calls Python.
    """

    __slots__ = ("data", "digest", "names", "origin", "text")

    def __init__(
        self, data: bytes, names: Iterable[str] = (), *, text: str = "", origin: str = "everywhere"
    ) -> None:
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise TypeError("JuliaCode needs the non-empty bytes of a serialized Julia Expr")
        self.data = bytes(data)
        self.names = tuple(sorted({str(n) for n in names}))
        self.text = str(text)
        self.origin = str(origin)
        self.digest = hashlib.sha256(self.data).hexdigest()

    @property
    def name(self) -> str:
        return f"everywhere:{self.origin}"

    def spec(self) -> tuple[Any, ...]:
        return ("eval", self.data, self.origin, False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_code, (self.data, self.names, self.text, self.origin))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JuliaCode) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return f"JuliaCode(<{len(self.data)} bytes>, origin={self.origin!r}, names={self.names!r})"


def _code(data: bytes, names: tuple[str, ...], text: str, origin: str) -> JuliaCode:
    return JuliaCode(data, names, text=text, origin=origin)


# -- on the workers -----------------------------------------------------------
#: Digests of the blocks this process's Julia has evaluated (a restarted worker is
#: a new process, so it starts empty and evaluates every block again).
_evaluated: set[str] = set()
_evaluated_lock = threading.Lock()


class EverywherePlugin(WorkerPlugin):
    """Runs every block, in order, on each worker's Julia (current and future workers).

    A worker evaluates a block once per process; registering the plugin again with
    more blocks evaluates only the new ones. A failing block fails the setup, so
    ``Client.register_plugin`` raises it on the client for connected workers.
    """

    idempotent = False

    def __init__(self, blocks: Iterable[JuliaCode], name: str) -> None:
        self.blocks = tuple(blocks)
        self.name = name

    async def setup(self, worker: Any) -> None:
        from .backends import backend_importable
        from .runtime import current_runtime, start_runtime

        if current_runtime() is None and not backend_importable():
            # A worker of a mixed cluster whose Python has no juliacall: failing here
            # would make `register_plugin` raise on the client and fail the Julia run
            # for the whole cluster. Skip it; it keeps running Python tasks (a Julia
            # task that lands here fails with JuliaRuntimeError: README "Julia").
            logger.warning(
                "worker %s cannot run Julia (juliacall is not installed in its Python): "
                "@everywhere blocks skipped; it stays usable for Python tasks",
                getattr(worker, "address", worker),
            )
            return
        loop = asyncio.get_running_loop()
        # Idempotent; with the preload the runtime is already up. Otherwise Julia
        # starts here, off the event loop.
        runtime = await loop.run_in_executor(None, start_runtime)
        for block in self.blocks:
            with _evaluated_lock:
                if block.digest in _evaluated:
                    continue
            # Submitted in order to the owner's FIFO queue, one at a time.
            await asyncio.wrap_future(runtime.submit(block))
            with _evaluated_lock:
                _evaluated.add(block.digest)


# -- on the client ------------------------------------------------------------
class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.blocks: list[JuliaCode] = []
        self.session = f"pydispatch-julia-everywhere-{uuid.uuid4().hex[:12]}"
        # dask clients the blocks go to -> how many blocks they have.
        self.targets: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


_registry = _Registry()


def blocks() -> tuple[JuliaCode, ...]:
    """The blocks recorded in this process, in order."""
    with _registry.lock:
        return tuple(_registry.blocks)


def available_names() -> frozenset[str]:
    """The ``Main`` names the recorded blocks define."""
    with _registry.lock:
        return frozenset(n for b in _registry.blocks for n in b.names)


def clear() -> None:
    """Forget every block (tests; a new Julia session in this process)."""
    with _registry.lock:
        _registry.blocks.clear()
        _registry.targets = weakref.WeakKeyDictionary()


def _dask_client(target: Any) -> Any:
    """The ``distributed.Client`` behind a pydispatch executor, client, or itself."""
    inner = getattr(target, "client", None)  # DaskExecutor -> pydispatch Client
    if inner is not None and hasattr(inner, "dask_client"):
        return inner.dask_client
    if hasattr(target, "dask_client"):  # pydispatch Client
        return target.dask_client
    if hasattr(target, "register_plugin"):  # distributed.Client
        return target
    raise TypeError(f"cannot send Julia code to the workers of a {type(target).__name__}")


def _push(client: Any) -> None:
    with _registry.lock:
        done = _registry.targets.get(client, 0)
        current = list(_registry.blocks)
        if done == len(current):
            return
    client.register_plugin(EverywherePlugin(current, _registry.session), name=_registry.session)
    with _registry.lock:
        _registry.targets[client] = len(current)


def attach(target: Any) -> None:
    """Send the blocks (now and whenever one is added) to the workers of ``target``.

    ``target`` is a pydispatch ``DaskExecutor`` or ``Client`` or a
    ``distributed.Client``. Raises what a block raised on a connected worker.
    """
    client = _dask_client(target)
    with _registry.lock:
        _registry.targets.setdefault(client, 0)
    _push(client)


def add_block(block: JuliaCode) -> None:
    """Record ``block`` and send it to every attached client's workers.

    A block equal to a recorded one (same bytes) is recorded once.
    """
    with _registry.lock:
        if block not in _registry.blocks:
            _registry.blocks.append(block)
        clients = list(_registry.targets.keys())
    for client in clients:
        _push(client)


# Main names the Julia *values* of a node need on a worker (an Op's arguments, a
# DataNode's data: a value of a Main struct, a Main function passed as an argument,
# a `ComposedFunction` of Main functions...), as DispatchBridge found them when it
# translated the node. Kept beside the node, not on it: the core's nodes know
# nothing of Julia.
_value_needs: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def record_value_needs(node: Any, names: Iterable[str]) -> Any:
    """Record the ``Main`` names ``node``'s Julia values need (checked before submission)."""
    needed = tuple(sorted({str(n) for n in names}))
    if needed:
        _value_needs[node] = needed
    return node


def _julia_needs(nodes: Iterable[Any]) -> list[tuple[Any, tuple[str, ...]]]:
    """``(node, Main names)`` for every node reachable from ``nodes`` that needs any:
    its Julia function's (``JuliaFunction.main_names``) and its values'."""
    from ..graph import Op
    from .function import JuliaFunction

    seen: set[int] = set()
    stack = list(nodes)
    out: list[tuple[Any, tuple[str, ...]]] = []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        names = set(_value_needs.get(node, ()))
        if isinstance(node, Op) and isinstance(node.func, JuliaFunction):
            names.update(node.func.main_names)
        if names:
            out.append((node, tuple(sorted(names))))
        stack.extend(node.dependencies())
    return out


def _holds_the_gil(node: Any) -> bool:
    """Whether `node` runs a Julia function with the GIL held (``nogil=False``)."""
    from .function import JuliaFunction

    func = getattr(node, "func", None)
    return isinstance(func, JuliaFunction) and not func.nogil


PYTHON_CALL = "PythonCall."
"""Prefix DispatchBridge gives a name from PythonCall a Julia task function uses."""


def check_available(nodes: Iterable[Any], provided: Iterable[str] | None = None) -> None:
    """Raise :class:`UnavailableFunctionError` if a Julia function needs an unknown name.

    A function's needs are the ``Main`` names DispatchBridge found it uses
    (``JuliaFunction.main_names``): its own name for a named ``Main`` function,
    and the ``Main`` globals and ``using``-imported names the code of a ``Main``
    closure refers to. A node's Julia values (arguments, data) add theirs
    (:func:`record_value_needs`). ``provided`` defaults to the names the recorded
    ``@everywhere`` blocks define.
    """
    have = available_names() if provided is None else frozenset(provided)
    missing: dict[str, tuple[str, ...]] = {}
    python_calls: dict[str, tuple[str, ...]] = {}
    for node, needed in _julia_needs(nodes):
        if not _holds_the_gil(node):
            calls = tuple(n for n in needed if n.startswith(PYTHON_CALL))
            if calls:
                python_calls.setdefault(str(node.label), calls)
        lacking = tuple(n for n in needed if not n.startswith(PYTHON_CALL) and n not in have)
        if lacking:
            missing.setdefault(str(node.label), lacking)
    if python_calls:
        shown = "; ".join(
            f"node {label!r} uses {', '.join(names)}"
            for label, names in sorted(python_calls.items())[:5]
        )
        raise UnavailableFunctionError(
            f"Julia task functions call Python: {shown}. A Julia task function runs with "
            "Python's GIL released, so calling Python from it would crash the worker. "
            "Run the Python part as its own node (from Julia, an Op over a "
            "DispatchBridge.PyFunc); a mere type check may name it qualified "
            "(`x isa PythonCall.Py`)",
            python_calls,
        )
    if not missing:
        return
    shown = "; ".join(
        f"node {label!r} needs Main.{', Main.'.join(names)}"
        for label, names in sorted(missing.items())[:5]
    )
    more = f" (and {len(missing) - 5} more nodes)" if len(missing) > 5 else ""
    raise UnavailableFunctionError(
        f"no worker can resolve these Julia functions: {shown}{more}. Julia sends only "
        "anonymous functions by value; named functions, non-constant globals and "
        "`using`-imported names from Main are not on the workers. Define them inside "
        "`DispatchBridge.@everywhere begin ... end` (it runs on every worker's Julia, "
        "including workers that join later), or put them in a package the workers load",
        missing,
    )
