"""`pydispatch run FILE.jl`: the graph a Julia file defines, and what its workers need.

Julia evaluates the file in the client's ``Main`` (``DispatchBridge.load_graph_file``),
and the whole file is recorded as an ``@everywhere`` block
(:mod:`pydispatch.julia.everywhere`): its definitions (named functions, globals,
``using`` lines) reach every worker's Julia before the graph runs there. Graph
files should therefore only *define* things at top level: the file also runs on
every worker. Its graph is then ``outputs`` or what ``main()`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["load_julia_graph"]


def load_julia_graph(file: Path) -> tuple[list[Any], Callable[[Any], None]]:
    """The pydispatch output nodes of ``file``, and ``prepare(executor)`` for the run.

    ``prepare`` sends the file (and any ``@everywhere`` block) to the executor's
    workers, then checks that every Julia function of the graph is available
    there; it raises :class:`~pydispatch.runfile.GraphFileError` saying what to
    do when not.
    """
    from ..errors import GraphFileError

    try:
        from juliacall import Main as julia  # starts Julia in this thread
    except ImportError:
        raise GraphFileError(
            f"{str(file)!r} is a Julia file, and running it needs juliacall: "
            'python -m pip install -e ".[julia]" (see README, "Julia")'
        ) from None
    julia.seval("import DispatchBridge")
    outputs = list(julia.DispatchBridge.load_graph_file(str(file)))
    return outputs, lambda executor: prepare(file, outputs, executor)


def prepare(file: Path, outputs: list[Any], executor: Any) -> None:
    """Send the recorded blocks to ``executor``'s workers; check the graph's functions."""
    from ..errors import GraphFileError
    from . import everywhere
    from .values import UnavailableFunctionError

    try:
        everywhere.check_available(outputs)
    except UnavailableFunctionError as err:
        raise GraphFileError(f"{file}: {err}") from None
    try:
        everywhere.attach(executor)
    except Exception as err:
        raise GraphFileError(
            f"{file}: evaluating the file on the workers' Julia failed: {err}"
        ) from None
