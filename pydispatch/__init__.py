"""pydispatch: Dispatcher-style task graphs on the dask distributed scheduler."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .address import Address, parse_address
from .annotations import annotate
from .errors import (
    CancelledError,
    DependencyError,
    DispatcherError,
    ExecutorError,
    NoWorkerWarning,
    RunTimeoutError,
    SchedulerLostError,
    SchedulerUnreachableError,
    TLSError,
    UnpicklableResultError,
)
from .executors import AsyncExecutor, Backoff, Executor, ParallelExecutor
from .graph import CollectNode, DataNode, DispatchGraph, DispatchNode, IndexNode, Op, op
from .results import Result

# the tools register themselves with the core: the terminal progress display for
# run(progress=True), the graph drawer for DispatchGraph.visualize, and (last, so its
# display wins in a notebook) Jupyter's pictures, summaries and progress
from . import progress_display, visualize  # noqa: F401  isort: skip
from . import notebook  # noqa: F401  isort: skip

if TYPE_CHECKING:
    from .dask_adapter.client import Client
    from .dask_adapter.keys import get_key
    from .dask_adapter.worker import Worker
    from .executors.dask import DaskExecutor

__version__ = "0.1.0"

# Names whose modules import dask.distributed (about a second): loaded on first use,
# so that `pydispatch --help` and the local executors start fast.
_LAZY = {
    "Client": "dask_adapter.client",
    "DaskExecutor": "executors.dask",
    "Worker": "dask_adapter.worker",
    "get_key": "dask_adapter.keys",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pydispatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Address",
    "AsyncExecutor",
    "Backoff",
    "CancelledError",
    "Client",
    "CollectNode",
    "DaskExecutor",
    "DataNode",
    "DependencyError",
    "DispatchGraph",
    "DispatchNode",
    "DispatcherError",
    "Executor",
    "ExecutorError",
    "IndexNode",
    "NoWorkerWarning",
    "Op",
    "ParallelExecutor",
    "Result",
    "RunTimeoutError",
    "SchedulerLostError",
    "SchedulerUnreachableError",
    "TLSError",
    "UnpicklableResultError",
    "Worker",
    "__version__",
    "annotate",
    "get_key",
    "op",
    "parse_address",
]
