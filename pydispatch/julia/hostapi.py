"""The Python functions DispatchBridge (the Julia package) calls.

The Julia side stays thin: it turns Dispatcher.jl nodes into calls of these
functions, passing Julia values as tagged trees (:mod:`.convert`) and reading
back *outcomes*: ``("ok", tagged_value)``, ``("julia", jltype, message,
backtrace, payload, trace)`` for a Julia exception on a worker, or
``("python", exception, trace)`` for a Python one. Everything here runs in the
Julia client's process, under the GIL, on the thread Julia calls from.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .convert import Tagged, decode, encode
from .function import JuliaFunction
from .values import ConversionError, JuliaTaskError

__all__ = [
    "add_everywhere",
    "attach",
    "check_graph",
    "collect_node",
    "data_node",
    "describe_error",
    "gather",
    "index_node",
    "julia_op",
    "outcome",
    "python_op",
    "run",
    "run_graph",
    "to_julia",
    "wait_for_worker",
    "worker_command",
    "worker_env",
]

Outcome = tuple[Any, ...]


def _arg(value: Any) -> Any:
    # Julia passes node arguments as pydispatch nodes and values as tagged tuples.
    return decode(value) if isinstance(value, tuple) else value


def julia_op(
    spec: Sequence[Any],
    label: str,
    args: Iterable[Any],
    kwargs: dict[str, Any],
    main_names: Iterable[str] = (),
    value_names: Iterable[str] = (),
) -> Any:
    """``Op(JuliaFunction.from_spec(spec), *args, **kwargs)`` labelled ``label``.

    ``main_names`` are the names in Julia's ``Main`` the function needs on a worker,
    ``value_names`` those its Julia arguments need (both checked by
    :func:`check_graph` before the graph is submitted).
    """
    from ..graph import Op
    from .everywhere import record_value_needs

    func = JuliaFunction.from_spec(tuple(spec), label, main_names=list(main_names))
    node = Op(func, *[_arg(a) for a in args], **{str(k): _arg(v) for k, v in kwargs.items()})
    node.label = str(label)
    return record_value_needs(node, value_names)


def python_op(
    func: Any,
    label: str,
    args: Iterable[Any],
    kwargs: dict[str, Any],
    value_names: Iterable[str] = (),
) -> Any:
    """An Op whose function is a Python callable (``DispatchBridge.PyFunc``).

    ``value_names``: the ``Main`` names its Julia arguments need (see ``julia_op``).
    """
    from ..graph import Op
    from .everywhere import record_value_needs

    node = Op(func, *[_arg(a) for a in args], **{str(k): _arg(v) for k, v in kwargs.items()})
    node.label = str(label)
    return record_value_needs(node, value_names)


def data_node(tree: Tagged, value_names: Iterable[str] = ()) -> Any:
    """``DataNode`` of a Julia value; ``value_names``: the ``Main`` names it needs."""
    from ..graph import DataNode
    from .everywhere import record_value_needs

    return record_value_needs(DataNode(_arg(tree)), value_names)


#: The Julia function a Julia ``IndexNode`` runs (Base is always loaded on workers).
GETINDEX = JuliaFunction("Base.getindex")


def index_node(
    node: Any, index: Any, label: str = "getindex", value_names: Iterable[str] = ()
) -> Any:
    """A Julia ``IndexNode(node, index)``: ``getindex(value, index)`` in Julia, on a worker.

    Dispatcher.jl indexes the parent's *Julia* value (``fetch(node)[index]``,
    Dispatcher.jl ``src/nodes.jl``, ``run!(::IndexNode)``): 1-based, and by
    Julia's rules for each type (linear indexing of a Matrix, a NamedTuple's
    fields, a Dict's keys, a String's bytes). So the node is an Op of Julia's
    ``getindex`` with the index unchanged, not a 0-based Python ``IndexNode``.
    ``index`` is a tagged value (or a plain one).
    """
    from ..graph import Op
    from .everywhere import record_value_needs

    op = Op(GETINDEX, node, _arg(index))
    op.label = str(label)
    return record_value_needs(op, value_names)


def collect_node(nodes: Iterable[Any], label: str) -> Any:
    """``CollectNode(nodes, label)``."""
    from ..graph import CollectNode

    return CollectNode(list(nodes), label=str(label))


def to_julia(value: Any) -> Tagged:
    """Encode a result for Julia; a value with no Julia form stays a Python object."""
    try:
        return encode(value)
    except ConversionError:
        return ("pyobject", value)


def describe_error(exc: BaseException) -> Outcome:
    """The outcome for a failure: unwraps DependencyError chains to the root cause."""
    from ..errors import DependencyError

    trace = ""
    root: BaseException = exc
    if isinstance(exc, DependencyError):
        trace = next((str(e.trace) for e in exc.chain() if e.trace), "")
        root = exc.root_cause
    if isinstance(root, JuliaTaskError):
        return ("julia", root.jltype, root.message, root.backtrace, root.payload, trace)
    return ("python", root, trace)


def outcome(result: Any) -> Outcome:
    """The outcome of one pydispatch ``Result``."""
    if result.is_error:
        return describe_error(result.error)
    return ("ok", to_julia(result.unwrap().result()))


def run(executor: Any, nodes: Sequence[Any], timeout: float | None = None) -> list[Outcome]:
    """Run ``nodes`` on ``executor`` (one submission); one outcome per node, in order."""
    check_graph(nodes, executor)
    results = executor.run(_unique(nodes), throw_error=False, timeout=timeout)
    by_id = {id(n): r for n, r in zip(_unique(nodes), results, strict=True)}
    return [outcome(by_id[id(n)]) for n in nodes]


def _unique(nodes: Sequence[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for node in nodes:
        if id(node) not in seen:
            seen.add(id(node))
            out.append(node)
    return out


def run_graph(
    executor: Any,
    nodes: Sequence[Any],
    outputs: Sequence[int],
    timeout: float | None = None,
) -> list[Outcome]:
    """Run a Julia graph; one outcome for *every* node of it, in the order of ``nodes``.

    ``nodes`` are the pydispatch nodes of every node of the Julia graph (Julia's
    ``DispatchGraph`` order) and ``outputs`` the 0-based positions of the output
    nodes among them (repeats allowed). Only the outputs are submitted (their
    dependencies come with them, in one submission); afterwards every node's
    value or error is read, as Dispatcher.jl's executors fill every node's result
    (Dispatcher.jl ``src/executors.jl``, ``dispatch!``). A failure is
    ``("julia", ...)``/``("python", ...)`` for the node whose own code failed and
    ``("upstream", i)`` for a node that did not run because node ``i`` failed.
    If the run itself fails (a timeout, a lost scheduler), every node gets that
    error (``("python", exc, "")``), so no Julia node is left unfilled.
    """
    check_graph([nodes[i] for i in outputs], executor)
    wanted = _unique([nodes[i] for i in outputs])
    try:
        executor.run(wanted, throw_error=False, timeout=timeout)
    except Exception as exc:
        return [("python", exc, "") for _ in nodes]
    position = {id(n): i for i, n in enumerate(nodes)}
    return [_node_outcome(n, position, timeout) for n in nodes]


def _node_outcome(node: Any, position: dict[int, int], timeout: float | None) -> Outcome:
    from ..errors import DependencyError

    try:
        return ("ok", to_julia(node.result(timeout=timeout)))
    except DependencyError as exc:
        upstream = exc.err if isinstance(exc.err, DependencyError) else None
        while upstream is not None and id(upstream.node) not in position:
            upstream = upstream.err if isinstance(upstream.err, DependencyError) else None
        if upstream is not None and upstream.node is not node:
            return ("upstream", position[id(upstream.node)])
        return describe_error(exc)
    except Exception as exc:
        return describe_error(exc)


def check_graph(nodes: Iterable[Any], executor: Any = None) -> None:
    """Before a Julia graph is submitted: send the ``@everywhere`` blocks, then check.

    Raises :class:`~pydispatch.julia.values.UnavailableFunctionError` naming every
    node whose Julia function needs a ``Main`` name no block defines.
    """
    from . import everywhere

    nodes = list(nodes)
    everywhere.check_available(nodes)
    if executor is not None and everywhere.blocks():
        everywhere.attach(executor)


def attach(target: Any) -> None:
    """Send this session's ``@everywhere`` blocks to the workers of ``target``, now and later."""
    from . import everywhere

    everywhere.attach(target)


def add_everywhere(data: bytes, names: Iterable[str], text: str, origin: str) -> None:
    """Record an ``@everywhere`` block (serialized ``Expr``) and send it to attached clients."""
    from .everywhere import JuliaCode, add_block

    add_block(JuliaCode(bytes(data), list(names), text=str(text), origin=str(origin)))


def gather(client: Any, nodes: Sequence[Any]) -> list[Outcome]:
    """``client.gather(nodes)`` as outcomes (a failure does not hide the others)."""
    out: list[Outcome] = []
    for node in nodes:
        try:
            out.append(("ok", to_julia(client.result(node))))
        except Exception as exc:
            out.append(describe_error(exc))
    return out


# -- workers launched from Julia ---------------------------------------------
def worker_command(address: str, *, nthreads: int = 1, python: str | None = None) -> list[str]:
    """The command that starts one Julia-capable worker for ``address``."""
    return [
        python or sys.executable,
        "-m",
        "pydispatch",
        "worker",
        str(address),
        "--nthreads",
        str(int(nthreads)),
        "--julia",
    ]


def worker_env(
    julia_exe: str,
    julia_project: str,
    base: Mapping[str, str] | None = None,
    juliacall_path: str | None = None,
) -> dict[str, str]:
    """The environment for that worker: reuse this Julia and this Julia project.

    ``base`` is the Julia session's environment (Julia's ``ENV``, which sees
    variables set after Python started; Python's ``os.environ`` does not).
    ``PYTHON_JULIACALL_EXE`` and ``PYTHON_JULIACALL_PROJECT`` (set together)
    make juliacall skip juliapkg and start exactly the calling Julia with the
    calling project, which already has DispatchBridge and a matching PythonCall.
    ``juliacall_path`` (PythonCall's ``pysrc``) goes first on ``PYTHONPATH`` so
    the worker imports the juliacall that matches that PythonCall.

    Two inherited variables would stop the worker's Julia from starting:

    * ``PYTHON_JULIACALL_INIT=no``, which PythonCall sets in the Python it embeds
      (PythonCall.jl ``src/Core/juliacall.jl``, ``init_juliacall``): juliacall
      then never starts Julia (juliacall 0.9.37 ``init()`` returns early);
    * a ``JULIA_LOAD_PATH`` without the standard library, as under ``Pkg.test``
      (Pkg.jl ``src/Operations.jl`` sets ``"@:<tmp>"``): juliacall's start-up
      runs ``import CompilerSupportLibraries_jll``, a stdlib. ``@stdlib`` is
      appended when the path names no ``@stdlib`` and has no empty entry (an
      empty entry stands for the default path, which includes it).
    """
    env = dict(os.environ if base is None else base)
    env.pop("PYTHON_JULIACALL_INIT", None)
    load_path = env.get("JULIA_LOAD_PATH")
    if load_path is not None:
        sep = ";" if sys.platform == "win32" else ":"
        entries = load_path.split(sep)
        if "@stdlib" not in entries and "" not in entries:
            env["JULIA_LOAD_PATH"] = sep.join([*entries, "@stdlib"])
    env["PYTHON_JULIACALL_EXE"] = str(julia_exe)
    env["PYTHON_JULIACALL_PROJECT"] = str(julia_project)
    env.setdefault("PYTHON_JULIACALL_THREADS", "1")
    env["PYDISPATCH_JULIA_BACKEND"] = "juliacall"
    if juliacall_path:
        rest = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(juliacall_path), rest) if p)
    return env


def scheduler_workers(address: str, timeout: float = 10.0) -> list[str]:
    """The addresses of the workers the scheduler at ``address`` knows."""
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        return sorted(client.scheduler_info(n_workers=-1)["workers"])


def wait_for_worker(
    address: str, known: Iterable[str], timeout: float = 120.0, alive: Any = None
) -> str:
    """Wait until a worker not in ``known`` registers with the scheduler; its address.

    ``alive`` (optional callable) is polled too: when it returns False (the
    worker process exited) this fails at once instead of waiting out the timeout.
    """
    from distributed import Client

    before = set(known)
    deadline = time.monotonic() + timeout
    with Client(address, timeout=min(timeout, 30.0)) as client:
        while True:
            new = set(client.scheduler_info(n_workers=-1)["workers"]) - before
            if new:
                return sorted(new)[0]
            if alive is not None and not alive():
                raise RuntimeError(
                    f"the worker process for {address} exited before registering; "
                    "run `python -m pydispatch worker ADDRESS --julia` by hand to see why"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no new worker registered with {address} within {timeout} s; "
                    "Julia start-up can be slow the first time (precompilation): raise the timeout"
                )
            time.sleep(0.2)
