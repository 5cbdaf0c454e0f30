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
from collections.abc import Iterable, Sequence
from typing import Any

from .convert import Tagged, decode, encode
from .function import JuliaFunction
from .values import ConversionError, JuliaTaskError

__all__ = [
    "collect_node",
    "data_node",
    "describe_error",
    "gather",
    "index_node",
    "julia_op",
    "outcome",
    "python_op",
    "run",
    "to_julia",
    "wait_for_worker",
    "worker_command",
    "worker_env",
]

Outcome = tuple[Any, ...]


def _arg(value: Any) -> Any:
    # Julia passes node arguments as pydispatch nodes and values as tagged tuples.
    return decode(value) if isinstance(value, tuple) else value


def julia_op(spec: Sequence[Any], label: str, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
    """``Op(JuliaFunction.from_spec(spec), *args, **kwargs)`` labelled ``label``."""
    from pydispatch import Op

    func = JuliaFunction.from_spec(tuple(spec), label)
    node = Op(func, *[_arg(a) for a in args], **{str(k): _arg(v) for k, v in kwargs.items()})
    node.label = str(label)
    return node


def python_op(func: Any, label: str, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
    """An Op whose function is a Python callable (``DispatchBridge.PyFunc``)."""
    from pydispatch import Op

    node = Op(func, *[_arg(a) for a in args], **{str(k): _arg(v) for k, v in kwargs.items()})
    node.label = str(label)
    return node


def data_node(tree: Tagged) -> Any:
    """``DataNode`` of a Julia value."""
    from pydispatch import DataNode

    return DataNode(_arg(tree))


def index_node(node: Any, index: int) -> Any:
    """``IndexNode(node, index)``; ``index`` is already 0-based."""
    from pydispatch import IndexNode

    return IndexNode(node, int(index))


def collect_node(nodes: Iterable[Any], label: str) -> Any:
    """``CollectNode(nodes, label)``."""
    from pydispatch import CollectNode

    return CollectNode(list(nodes), label=str(label))


def to_julia(value: Any) -> Tagged:
    """Encode a result for Julia; a value with no Julia form stays a Python object."""
    try:
        return encode(value)
    except ConversionError:
        return ("pyobject", value)


def describe_error(exc: BaseException) -> Outcome:
    """The outcome for a failure: unwraps DependencyError chains to the root cause."""
    from pydispatch import DependencyError

    trace = ""
    root: BaseException = exc
    while isinstance(root, DependencyError):
        trace = trace or str(getattr(root, "trace", "") or "")
        inner = root.err
        if not isinstance(inner, BaseException):
            break
        root = inner
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
    results = executor.run(list(nodes), throw_error=False, timeout=timeout)
    return [outcome(r) for r in results]


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
    base: dict[str, str] | None = None,
    juliacall_path: str | None = None,
) -> dict[str, str]:
    """The environment for that worker: reuse this Julia and this Julia project.

    ``PYTHON_JULIACALL_EXE`` and ``PYTHON_JULIACALL_PROJECT`` (set together)
    make juliacall skip juliapkg and start exactly the calling Julia with the
    calling project, which already has DispatchBridge and a matching PythonCall.
    ``juliacall_path`` (PythonCall's ``pysrc``) goes first on ``PYTHONPATH`` so
    the worker imports the juliacall that matches that PythonCall.
    """
    env = dict(os.environ if base is None else base)
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
