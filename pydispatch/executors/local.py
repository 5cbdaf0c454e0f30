"""Executors on this machine: a readiness-driven scheduler over a pool.

A node is submitted to the pool once all its dependencies have values; a node
whose dependency failed is marked failed without running. The calling thread
coordinates; values come back to it.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import graphlib
import heapq
import itertools
import os
import pickle
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cloudpickle

from ..errors import DependencyError, DispatcherError, RunTimeoutError
from ..graph import Call, DispatchNode
from ..pickling import dumps
from ..plan import Plan
from ..progress import Progress
from ..retry import Backoff, RetryPredicate
from ..tracebacks import format_user_exception
from . import process_pool
from .base import Executor, RunReport
from .thread_pool import ThreadPool


class Settled:
    """A local outcome: a value, or the `DependencyError` of a failure."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: DependencyError | None = None):
        self.value = value
        self.error = error

    def result(self, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def done(self) -> bool:
        return True


class NotStarted:
    """The outcome of a node a stopped run never started."""

    def __init__(self, node: DispatchNode, why: str):
        self._message = f"node {node.label!r} did not run: {why}"

    def result(self, timeout: float | None = None) -> Any:
        raise DispatcherError(self._message)

    def done(self) -> bool:
        return False


def _resolve(
    args: tuple[Any, ...], kwargs: dict[str, Any], values: dict[DispatchNode, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(values[a] if isinstance(a, DispatchNode) else a for a in args)
    kwargs = {k: values[v] if isinstance(v, DispatchNode) else v for k, v in kwargs.items()}
    return args, kwargs


class PoolExecutor(Executor):
    """Runs each node as one call in a `concurrent.futures` pool."""

    def __init__(
        self,
        retries: int = 5,
        retry_on: Iterable[RetryPredicate] = (),
        *,
        max_workers: int | None = None,
        backoff: Backoff | None = None,
    ):
        super().__init__(retries, retry_on, backoff=backoff)
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ValueError(f"max_workers must be an int >= 1 or None, got {max_workers!r}")
        self.max_workers = max_workers
        self._pool: cf.Executor | None = None
        self._pool_lock = threading.Lock()  # runs and dispatch() may share the pool

    @abstractmethod
    def _new_pool(self) -> cf.Executor: ...

    @abstractmethod
    def _submit(self, pool: cf.Executor, node: DispatchNode, call: Call) -> cf.Future[Any]:
        """Start `call` (arguments resolved to values) in `pool`."""

    def _pool_or_new(self) -> cf.Executor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _replace_pool(self, broken: cf.Executor | None = None) -> None:
        """Discard the current pool (the next call makes a new one): the one that
        broke, or, with no `broken`, whatever runs in it (a run timed out). With
        `broken`, only if that is still the current pool: a late report from a
        pool already replaced must not discard the new one."""
        with self._pool_lock:
            if broken is not None and broken is not self._pool:
                return
            pool, self._pool = self._pool, None
        if pool is not None:
            self._discard(pool)

    def _discard(self, pool: cf.Executor) -> None:
        """Shut a pool down without waiting; stop what still runs in it where possible
        (threads cannot be stopped)."""
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _execute(
        self, plan: Plan, *, throw_error: bool, timeout: float | None, progress: Progress
    ) -> RunReport:
        return _Run(self, plan, throw_error, timeout, progress).go()


class _Run:
    """One run of a plan on a `PoolExecutor`: the coordinator's state."""

    def __init__(
        self,
        executor: PoolExecutor,
        plan: Plan,
        throw_error: bool,
        timeout: float | None,
        progress: Progress,
    ):
        self.executor = executor
        self.plan = plan
        self.throw_error = throw_error
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.progress = progress
        self.report = RunReport()
        self.values: dict[DispatchNode, Any] = {}
        self.sorter: graphlib.TopologicalSorter[DispatchNode] = graphlib.TopologicalSorter()
        self.dependents: dict[DispatchNode, list[DispatchNode]] = {n: [] for n in plan.order}
        self.ready: list[DispatchNode] = []
        self.running: dict[cf.Future[Any], tuple[DispatchNode, int]] = {}
        self.pools: dict[cf.Future[Any], cf.Executor] = {}  # the pool each future runs in
        self.delayed: list[tuple[float, int, DispatchNode, int]] = []
        self._tie = itertools.count()

    def go(self) -> RunReport:
        for node in self.plan.order:
            node.outcome = None
            deps = self.plan.dependencies(node)
            self.sorter.add(node, *deps)
            for dep in deps:
                self.dependents[dep].append(node)
        self.sorter.prepare()
        try:
            self._take_ready()
            self._loop()
        finally:
            for node in self.plan.order:
                if node.outcome is None:
                    node.outcome = NotStarted(node, "the run stopped before it started")
        return self.report

    def _take_ready(self) -> None:
        """Queue the nodes whose dependencies are all done; given nodes settle at once."""
        while batch := self.sorter.get_ready():
            for node in batch:
                if node in self.plan.given:
                    self._succeed(node, self.plan.given[node])
                elif node.outcome is None:
                    self.ready.append(node)

    def _stopping(self) -> bool:
        return self.throw_error and self.report.first_failure is not None

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            while self.delayed and self.delayed[0][0] <= now and not self._stopping():
                _, _, node, attempt = heapq.heappop(self.delayed)
                self._start(node, attempt)
            while self.ready and not self._stopping():
                self._start(self.ready.pop(), 0)
            if not self.running and (not self.delayed or self._stopping()):
                return
            wake = self.delayed[0][0] if self.delayed else None
            if self.deadline is not None:
                wake = self.deadline if wake is None else min(wake, self.deadline)
            wait_for = None if wake is None else max(0.0, wake - time.monotonic())
            done, _ = cf.wait(self.running, timeout=wait_for, return_when=cf.FIRST_COMPLETED)
            for future in done:
                node, attempt = self.running.pop(future)
                self._finished(node, attempt, future)
            self._take_ready()
            if (
                self.deadline is not None
                and time.monotonic() >= self.deadline
                and (self.running or self.delayed or self.ready)
            ):
                self._time_out()

    def _start(self, node: DispatchNode, attempt: int) -> None:
        func, args, kwargs = node.call()
        args, kwargs = _resolve(args, kwargs, self.values)
        pool = self.executor._pool_or_new()
        try:
            future = self.executor._submit(pool, node, (func, args, kwargs))
        except BrokenProcessPool as err:
            self.executor._replace_pool(pool)
            future = cf.Future()
            future.set_exception(err)
        except DependencyError as err:
            future = cf.Future()
            future.set_exception(err)
        self.running[future] = (node, attempt)
        self.pools[future] = pool

    def _finished(self, node: DispatchNode, attempt: int, future: cf.Future[Any]) -> None:
        pool = self.pools.pop(future)
        if future.cancelled():
            # Not by this run (its own timeout raises before it looks): another run on
            # this executor timed out and discarded the shared pool before this call
            # started. Start it again, in the new pool.
            self._start(node, attempt)
            return
        err = future.exception()
        if err is None:
            self._succeed(node, future.result())
            return
        if isinstance(err, BrokenProcessPool):
            self.executor._replace_pool(pool)
        original = err.err if isinstance(err, DependencyError) and err.node is node else err
        try:
            retry = self.executor._policy.should_retry(original, attempt)
        except DispatcherError as predicate_error:
            self._fail(node, DependencyError.from_exception(predicate_error, node))
            return
        if retry:
            due = time.monotonic() + self.executor._policy.backoff.delay(attempt + 1)
            heapq.heappush(self.delayed, (due, next(self._tie), node, attempt + 1))
            return
        trace = err.__dict__.pop(_TRACE, None) if hasattr(err, "__dict__") else None
        if isinstance(err, DependencyError) and err.node is node:
            error = err
        elif isinstance(trace, str):  # from a worker process, without pydispatch's frames
            error = DependencyError(err, trace, node)
        else:
            error = DependencyError.from_exception(err, node)
        self._fail(node, error)

    def _succeed(self, node: DispatchNode, value: Any) -> None:
        self.values[node] = value
        node.outcome = Settled(value)
        self.progress.node_finished(node, True)
        self.sorter.done(node)

    def _fail(self, node: DispatchNode, error: DependencyError) -> None:
        # Iterative, not recursive: a long chain below a failure must not overflow the stack.
        failing = [(node, error)]
        while failing:
            node, error = failing.pop()
            if node.outcome is not None:
                continue
            self.report.fail(node, error)
            node.outcome = Settled(error=error)
            self.progress.node_finished(node, False)
            failing.extend(
                (child, DependencyError(error, error.trace, child))
                for child in reversed(self.dependents[node])
                if child.outcome is None
            )

    def _time_out(self) -> None:
        waiting = (
            [n for n, _ in self.running.values()] + [n for *_, n, _ in self.delayed] + self.ready
        )
        for future, (node, _) in self.running.items():
            future.cancel()
            node.outcome = NotStarted(node, "the run timed out while it was running")
        self.executor._replace_pool()
        names = ", ".join(repr(n.label) for n in waiting[:5])
        more = f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        raise RunTimeoutError(
            f"the run did not finish within timeout={self.timeout}s: still waiting for "
            f"{names}{more}; raise the timeout or look at why these nodes are slow"
        )


class AsyncExecutor(PoolExecutor):
    """Runs nodes in threads of this process.

    With the default `retry_on=()`, nothing is retried whatever `retries` is.
    """

    def _new_pool(self) -> cf.Executor:
        return ThreadPool(self.max_workers or 32, thread_name_prefix="pydispatch-async")

    def _discard(self, pool: cf.Executor) -> None:
        # A node still running after a timeout may never return: exit must not wait.
        assert isinstance(pool, ThreadPool)
        pool.abandon()

    def _submit(self, pool: cf.Executor, node: DispatchNode, call: Call) -> cf.Future[Any]:
        func, args, kwargs = call
        return pool.submit(func, *args, **kwargs)


def _worker_died(err: BaseException) -> bool:
    """Default `ParallelExecutor` predicate: the worker process running the node died."""
    return isinstance(err, BrokenProcessPool)


_TRACE = "__pydispatch_trace__"
"""Attribute on which a worker process sends back the user's traceback of an exception."""


def _call_pickled(payload: bytes) -> Any:
    func, args, kwargs = cloudpickle.loads(payload)
    try:
        return func(*args, **kwargs)
    except Exception as err:
        with contextlib.suppress(Exception):  # e.g. an exception type with __slots__
            setattr(err, _TRACE, format_user_exception(err))
        # An exception the coordinator cannot unpickle breaks the whole pool, which
        # looks like a dead worker: it would be retried and its message lost.
        try:
            pickle.loads(pickle.dumps(err))
        except Exception as problem:
            raise DispatcherError(
                f"{type(err).__module__}.{type(err).__qualname__}: {err} (this exception "
                f"cannot be sent back from the worker process: {type(problem).__name__}: "
                f"{problem}; make it picklable, e.g. pass all __init__ arguments to "
                "super().__init__)"
            ) from err
        raise


class ParallelExecutor(PoolExecutor):
    """Runs nodes in worker processes of this machine; functions travel by cloudpickle.

    A node whose worker process dies is retried (up to `retries` times); user
    predicates in `retry_on` are checked after that default one.
    """

    default_retry_on = (_worker_died,)

    def _discard(self, pool: cf.Executor) -> None:
        assert isinstance(pool, cf.ProcessPoolExecutor)
        process_pool.discard(pool)

    def _new_pool(self) -> cf.Executor:
        import multiprocessing

        return cf.ProcessPoolExecutor(
            max_workers=self.max_workers or os.cpu_count() or 1,
            mp_context=multiprocessing.get_context("spawn"),
        )

    def _submit(self, pool: cf.Executor, node: DispatchNode, call: Call) -> cf.Future[Any]:
        try:
            payload = dumps(call)
        except Exception as err:
            problem = DispatcherError(
                f"cannot pickle the function or arguments of node {node.label!r} to send "
                f"them to a worker process ({type(err).__name__}: {err}); use picklable "
                "functions and values, or AsyncExecutor to run in this process"
            )
            problem.__cause__ = err
            raise DependencyError(problem, "", node) from None
        return pool.submit(_call_pickled, payload)
