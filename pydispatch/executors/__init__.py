"""Executors: where and how a graph runs."""

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
