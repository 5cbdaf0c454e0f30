"""Executors: where and how a graph runs.

Room: `base` (the `Executor` contract: `run`, `dispatch`, one `Result` per output)
and the local executors (`AsyncExecutor`, `ParallelExecutor`, on `thread_pool` and
`process_pool`) use only the core;
`executors.dask` sits above the dask adapter and is imported lazily, so importing
this package never imports dask.
"""

from ..plan import Plan
from ..retry import Backoff, RetryPolicy
from .base import Executor, RunReport
from .local import AsyncExecutor, ParallelExecutor

__all__ = [
    "AsyncExecutor",
    "Backoff",
    "Executor",
    "ParallelExecutor",
    "Plan",
    "RetryPolicy",
    "RunReport",
]
