"""Executors: where and how a graph runs."""

from .base import Executor, RunReport
from .local import AsyncExecutor, ParallelExecutor
from .plan import Plan
from .retry import Backoff, RetryPolicy

__all__ = [
    "AsyncExecutor",
    "Backoff",
    "Executor",
    "ParallelExecutor",
    "Plan",
    "RetryPolicy",
    "RunReport",
]
