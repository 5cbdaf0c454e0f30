"""Loading the graph a Python (or Julia) file defines, for `pydispatch run FILE`.

The convention: FILE is an ordinary Python file. It defines its graph with

* a module-level ``outputs``: a node, a list (or tuple) of nodes, or a
  `DispatchGraph` (whose leaf nodes are the outputs); or
* a function ``main()`` taking no arguments and returning one of those.

``outputs`` wins when both exist. The file runs with ``__name__`` set to
``"__pydispatch_run__"``, so an ``if __name__ == "__main__":`` block (for
running the file with plain ``python``) does not run. Its directory is put
first on ``sys.path`` while it loads, as ``python FILE`` would.

Functions defined in FILE, and in modules imported from FILE's directory,
travel to dask workers by value (cloudpickle): workers need not be able to
import them.

A Julia file (``.jl``, needs juliacall) follows the same convention with
Dispatcher.jl nodes: a global ``outputs`` or a function ``main()``. Its
functions run in Julia on the workers (see `pydispatch.julia`).
"""

from __future__ import annotations

import os
import reprlib
import runpy
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GraphFileError
from .graph import DispatchGraph, DispatchNode

RUN_NAME = "__pydispatch_run__"


@dataclass
class GraphFile:
    """What a graph file defines: its path and its output nodes, in order."""

    path: Path
    outputs: list[DispatchNode]
    prepare: Callable[[Any], None] | None = None
    """Called with the executor before the run (a Julia file sends its definitions
    to the workers here); raises `GraphFileError` when the graph cannot run there."""

    def graph(self) -> DispatchGraph:
        """The graph reachable from the outputs."""
        return DispatchGraph(self.outputs)


Loader = Callable[[Path], tuple[list[Any], Callable[[Any], None] | None]]
"""Loads a graph file of another language: its outputs, and `prepare(executor)` or None."""


def load_graph_file(
    path: str | os.PathLike[str], loaders: Mapping[str, Loader] | None = None
) -> GraphFile:
    """Run the Python file at `path` (or another kind `loaders` handles, by suffix) and
    return the outputs it defines.

    `pydispatch run` passes the Julia loader for ``.jl`` files
    (`pydispatch.julia.runfile.load_julia_graph`). Raises `GraphFileError` naming the
    file when it does not exist, is of no kind it can load, or defines no graph. An
    exception raised by the file's own code propagates unchanged (with its traceback),
    chained to nothing.
    """
    file = Path(path)
    if not file.exists():
        raise GraphFileError(f"{str(file)!r} does not exist; give the path of a Python file")
    if file.is_dir():
        raise GraphFileError(f"{str(file)!r} is a directory; give the path of a Python file")
    loader = (loaders or {}).get(file.suffix)
    if loader is not None:
        outputs, prepare = loader(file.resolve())
        return GraphFile(file, _as_outputs(outputs, f"{file}: the graph"), prepare)
    if file.suffix != ".py":
        raise GraphFileError(f"{str(file)!r} is neither a Python (.py) nor a Julia (.jl) file")
    namespace = _execute(file.resolve())
    return GraphFile(file, _outputs_of(namespace, file))


def _execute(file: Path) -> dict[str, Any]:
    """Run `file` as a script named RUN_NAME, its directory first on sys.path."""
    directory = str(file.parent)
    before = set(sys.modules)
    sys.path.insert(0, directory)
    try:
        namespace = runpy.run_path(str(file), run_name=RUN_NAME)
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:
            pass
    _ship_local_modules_by_value(set(sys.modules) - before, file.parent)
    return namespace


def _ship_local_modules_by_value(names: Iterable[str], directory: Path) -> None:
    """Make modules the file imported from its own directory travel by value."""
    import cloudpickle

    for name in names:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        if module is None or origin is None:
            continue
        try:
            Path(origin).resolve().relative_to(directory)
        except ValueError:
            continue
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            pass  # a submodule of a package that is already registered, or a built-in


def _outputs_of(namespace: dict[str, Any], file: Path) -> list[DispatchNode]:
    if "outputs" in namespace:
        return _as_outputs(namespace["outputs"], f"{file}: `outputs`")
    main = namespace.get("main")
    if callable(main):
        return _as_outputs(main(), f"{file}: main() returned a value that")
    raise GraphFileError(
        f"{str(file)!r} defines no graph: define a module-level `outputs` (a node, a list "
        "of nodes or a DispatchGraph), or a function `main()` that returns one"
    )


def _as_outputs(value: Any, what: str) -> list[DispatchNode]:
    if isinstance(value, DispatchGraph):
        nodes = value.leaf_nodes()
    elif isinstance(value, DispatchNode):
        nodes = [value]
    elif isinstance(value, (list, tuple)):
        nodes = list(value)
    else:
        nodes = []
    if not nodes or not all(isinstance(n, DispatchNode) for n in nodes):
        raise GraphFileError(
            f"{what} is {reprlib.repr(value)}, not a graph: it must be a node, a non-empty list of "
            "nodes (Op, DataNode, IndexNode, CollectNode) or a DispatchGraph"
        )
    return nodes
