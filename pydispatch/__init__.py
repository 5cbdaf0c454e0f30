"""pydispatch: Dispatcher-style task graphs on the dask distributed scheduler."""

from .address import Address, parse_address
from .client import Client, SchedulerLostError, SchedulerUnreachableError
from .executors import AsyncExecutor, Backoff, Executor, ParallelExecutor
from .executors.dask import DaskExecutor, NoWorkerWarning
from .graph import CollectNode, DataNode, DispatchGraph, DispatchNode, IndexNode, Op, op
from .keys import get_key
from .results import (
    CancelledError,
    DependencyError,
    DispatcherError,
    ExecutorError,
    Result,
    RunTimeoutError,
)
from .worker import Worker

__version__ = "0.1.0"

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
    "Worker",
    "__version__",
    "get_key",
    "op",
    "parse_address",
]
