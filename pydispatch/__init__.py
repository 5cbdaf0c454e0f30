"""pydispatch: Dispatcher-style task graphs on the dask distributed scheduler."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .address import Address, parse_address
from .executors import AsyncExecutor, Backoff, Executor, ParallelExecutor
from .graph import CollectNode, DataNode, DispatchGraph, DispatchNode, IndexNode, Op, op
from .results import (
    CancelledError,
    DependencyError,
    DispatcherError,
    ExecutorError,
    Result,
    RunTimeoutError,
)

if TYPE_CHECKING:
    from .client import Client
    from .connection import SchedulerLostError, SchedulerUnreachableError, TLSError
    from .executors.dask import DaskExecutor, NoWorkerWarning
    from .keys import get_key
    from .transfer import UnpicklableResultError
    from .worker import Worker

__version__ = "0.1.0"

# Names whose modules import dask.distributed (about a second): loaded on first use,
# so that `pydispatch --help` and the local executors start fast.
_LAZY = {
    "Client": "client",
    "SchedulerLostError": "connection",
    "SchedulerUnreachableError": "connection",
    "TLSError": "connection",
    "UnpicklableResultError": "transfer",
    "DaskExecutor": "executors.dask",
    "NoWorkerWarning": "executors.dask",
    "Worker": "worker",
    "get_key": "keys",
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
    "get_key",
    "op",
    "parse_address",
]
