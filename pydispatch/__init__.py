"""pydispatch: Dispatcher-style task graphs on the dask distributed scheduler."""

from .executors import AsyncExecutor, Backoff, Executor, ParallelExecutor
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

__version__ = "0.1.0"

__all__ = [
    "AsyncExecutor",
    "Backoff",
    "CancelledError",
    "CollectNode",
    "DataNode",
    "DependencyError",
    "DispatchGraph",
    "DispatchNode",
    "DispatcherError",
    "Executor",
    "ExecutorError",
    "IndexNode",
    "Op",
    "ParallelExecutor",
    "Result",
    "RunTimeoutError",
    "__version__",
    "get_key",
    "op",
]
