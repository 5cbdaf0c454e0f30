"""`Client`: submit nodes to a dask scheduler, then cancel, gather or replicate them.

A thin layer over `distributed.Client`: every node becomes a content-keyed
dask task; the client holds a dask future per submitted key, so results stay
on the cluster until they are cancelled, shut down or reset.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import distributed
from distributed import Future
from distributed.client import _wait as _wait_futures

from ..address import Address
from ..errors import (
    CancelledError,
    DependencyError,
    DispatcherError,
    SchedulerLostError,
    SchedulerUnreachableError,
    TLSError,
    UnpicklableResultError,
)
from ..graph import DispatchNode, _check_nodes
from ..plan import Plan
from ..retry import RetryPolicy
from ..tracebacks import format_user_frames
from .connection import (
    check_seconds,
    check_tls_config,
    connect_error,
    is_tls_mismatch,
    normalize_address,
)
from .keys import KeyMaker
from .replication import protect_replicas
from .shipping import ShipMode, Shipper
from .tasks import build_tasks, with_restrictions
from .transfer import _CheckingShipper

__all__ = [
    "Client",
    "DaskOutcome",
    "SchedulerLostError",
    "SchedulerUnreachableError",
    "TLSError",
    "UnpicklableResultError",
    "remote_trace",
]


class _DaskClient(distributed.Client):
    """A `distributed.Client` that ignores the scheduler's late echo of our own cancels.

    The scheduler confirms a cancel to every client after the fact; a key
    cancelled and submitted again at once would otherwise have its new future
    cancelled by that late confirmation.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        self._late_cancels: dict[str, int] = {}
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            # close now: otherwise __del__ closes it later, at exit, with a timeout traceback
            if getattr(self, "_Client__loop", None) is not None:
                self.close(timeout=2)
            raise

    def expect_cancel_echo(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._late_cancels[key] = self._late_cancels.get(key, 0) + 1

    def _handle_cancelled_keys(self, keys, reason=None, msg=None):
        for key in keys:
            pending = self._late_cancels.get(key, 0)
            if pending:
                if pending == 1:
                    del self._late_cancels[key]
                else:
                    self._late_cancels[key] = pending - 1
                continue
            state = self.futures.get(key)
            if state is not None:
                state.cancel(reason=reason, msg=msg)


def remote_trace(future: Future) -> str:
    """The remote traceback text of a failed future, without pydispatch's own frames."""
    try:
        tb = future.traceback()
    except Exception:
        return ""
    return format_user_frames(tb, remote=True)


class DaskOutcome:
    """A node's outcome on the cluster: the dask future of its key, and its error once known.

    Node objects that share a key (identical nodes) each have an outcome; all of them
    follow the client's current future for that key, so a resubmission, a cancel or a
    reset of one acts on every one of them alike.
    """

    __slots__ = ("_error", "_future", "client", "key", "node")

    def __init__(self, client: Client, node: DispatchNode, future: Future):
        self.client = client
        self.node = node
        self.key = cast(str, future.key)
        self._future = future
        self._error: DependencyError | None = None

    @property
    def future(self) -> Future:
        """The client's live future for this key (a newer submission replaces an older one)."""
        live = self.client.future_of(self.key)
        if live is not None and live is not self._future:
            self._future, self._error = live, None
        return self._future

    @property
    def error(self) -> DependencyError | None:
        """The node's error, once a run has reported it for the current future."""
        self.future  # noqa: B018 - drops an error that belonged to a replaced future
        return self._error

    @error.setter
    def error(self, error: DependencyError | None) -> None:
        self.future  # noqa: B018
        self._error = error

    def result(self, timeout: float | None = None) -> Any:
        if timeout is not None:
            check_seconds("timeout", timeout)
        if self.client.status != "running":
            raise DispatcherError(
                f"the result of node {self.node.label!r} is gone: its Client of "
                f"{self.client.scheduler_address} was shut down (executor closed or reset); "
                "run the node again"
            )
        self.client._check_not_cancelled(self.key, self.node)
        future = self.future
        if self._error is not None:
            raise self._error
        try:
            return future.result(timeout=timeout)
        except (distributed.client.FutureCancelledError, distributed.CancelledError) as err:
            raise CancelledError(
                f"node {self.node.label!r} was cancelled on the cluster ({err}); run it again"
            ) from None
        except TimeoutError:
            raise
        except Exception as err:
            self._error = DependencyError(err, remote_trace(future), self.node)
            raise self._error from None

    def done(self) -> bool:
        return self.future.done()


P = ParamSpec("P")
R = TypeVar("R")


def _synchronized(
    method: Callable[Concatenate[Client, P], R],
) -> Callable[Concatenate[Client, P], R]:
    """Run `method` holding the client's lock."""

    @functools.wraps(method)
    def locked(self: Client, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Client:
    """Submits nodes to the dask scheduler at `scheduler_address` and fetches results."""

    def __init__(
        self,
        scheduler_address: str | Address = "127.0.0.1:8786",
        *,
        connect_timeout: float = 10.0,
        security: Any = None,
        ship_functions: ShipMode = "auto",
        retry_policy: RetryPolicy | None = None,
    ):
        self.scheduler_address = normalize_address(scheduler_address)
        check_seconds("connect_timeout", connect_timeout)
        if security is not None and self.scheduler_address.startswith("tcp://"):
            self.scheduler_address = "tls://" + self.scheduler_address[len("tcp://") :]
        self.id = f"pydispatch-client-{uuid.uuid4()}"
        self.status = "connecting"
        self._ship = Shipper(ship_functions)
        self._task_functions = _CheckingShipper(self._ship)
        self._policy = retry_policy and dataclasses.replace(
            retry_policy, retry_on=tuple(self._ship(p) for p in retry_policy.retry_on)
        )
        self._lock = threading.RLock()  # runs from several threads share the bookkeeping
        self._futures: dict[str, Future] = {}
        # every submitted node object by id, with its key: identical node objects share
        # a key (content keys), and each of them gets its own outcome
        self._key_of: dict[int, tuple[DispatchNode, str]] = {}
        self._dependents: dict[str, set[str]] = {}
        self._cancelled: set[str] = set()
        check_tls_config(self.scheduler_address, security)
        try:
            self._dask = _DaskClient(
                self.scheduler_address,
                timeout=connect_timeout,
                security=security,
                set_as_default=False,
                name=self.id,
            )
        except (OSError, TimeoutError, ValueError) as err:
            self.status = "closed"
            if isinstance(err, ValueError) and not is_tls_mismatch(self.scheduler_address, err):
                raise
            raise connect_error(self.scheduler_address, connect_timeout, err) from None
        self.status = "running"

    @property
    def keys(self) -> set[str]:
        """Keys submitted by this client and not cancelled."""
        return set(self._futures)

    def future_of(self, key: str) -> Future | None:
        """This client's live future for `key`, if it holds one."""
        return self._futures.get(key)

    @property
    def dask_client(self) -> distributed.Client:
        """The underlying `distributed.Client`."""
        return self._dask

    def _check_running(self) -> None:
        if self.status != "running":
            raise DispatcherError(
                f"this Client of {self.scheduler_address} is shut down; create a new Client"
            )

    def _check_not_cancelled(self, key: str, node: DispatchNode) -> None:
        if key in self._cancelled:
            raise CancelledError(
                f"node {node.label!r} (key {key}) was cancelled, and its result is gone; "
                "submit it again to recompute it"
            )

    @_synchronized
    def submit_plan(
        self, plan: Plan, restrictions: Mapping[DispatchNode, Sequence[str]] | None = None
    ) -> tuple[KeyMaker, dict[str, Future]]:
        """Submit every node of `plan` not already held, in one update; futures by key."""
        self._check_running()
        keys = KeyMaker(plan.given)
        failed: list[Future] = []
        tasks = build_tasks(
            plan.order,
            keys,
            plan.given,
            self._task_functions,
            self._policy,
            skip=lambda key: self._held(key, failed),
        )
        if failed:  # a new run of a node that failed runs it again
            self._dask.retry(failed)
        for node in plan.order:
            key = keys(node)
            self._key_of[id(node)] = (node, key)
            self._cancelled.discard(key)
            for dep in plan.dependencies(node):
                self._dependents.setdefault(keys(dep), set()).add(key)
        if tasks:
            key_restrictions = {keys(n): list(w) for n, w in (restrictions or {}).items()}
            graph = with_restrictions(tasks, key_restrictions)
            new = self._dask.get(graph, list(tasks), sync=False)
            self._futures.update(zip(tasks, new, strict=True))
        futures: dict[str, Future] = {}
        for node in plan.order:  # every node object, also those sharing a key with another
            key = keys(node)
            future = futures.setdefault(key, self._futures[key])
            node._outcome = DaskOutcome(self, node, future)
        return keys, futures

    def _held(self, key: str, failed: list[Future]) -> bool:
        """Whether this client holds a live future for `key` (failed ones go to `failed`)."""
        future = self._futures.get(key)
        if future is None:
            return False
        if future.status == "cancelled":  # by dask or another client: submit it anew
            del self._futures[key]
            return False
        if future.status == "error":
            failed.append(future)
        return True

    def submit(self, node: DispatchNode, workers: str | Sequence[str] | None = None) -> None:
        """Submit `node` and every dependency not yet submitted, in one update.

        `workers` (addresses) restricts where `node` itself runs.
        """
        (node,) = _check_nodes([node], "submit()")
        restrictions = None
        if workers is not None:
            if isinstance(workers, (str, Address)):
                wanted: list[Any] = [workers]
            elif isinstance(workers, Iterable):
                wanted = list(workers)
            else:
                raise TypeError(
                    f"workers must be a worker address or a list of them "
                    f"(e.g. 'tcp://127.0.0.1:40000'), got {workers!r} ({type(workers).__name__})"
                )
            restrictions = {node: self._check_workers(wanted)}
        self.submit_plan(Plan.build([node]), restrictions)

    def _check_workers(self, wanted: list[Any]) -> list[str]:
        known = set(self._dask.scheduler_info(n_workers=-1)["workers"])
        addresses = [
            normalize_address(w) if not str(w).startswith("tls") else str(w) for w in wanted
        ]
        missing = [a for a in addresses if a not in known]
        if missing:
            raise ValueError(
                f"no worker at {', '.join(missing)} is connected to {self.scheduler_address}; "
                f"connected workers: {', '.join(sorted(known)) or 'none'}"
            )
        return addresses

    def _key(self, node: DispatchNode) -> str:
        known = self._key_of.get(id(node))
        if known is not None and known[0] is node:
            return known[1]
        return KeyMaker()(node)

    def _outcome(self, node: DispatchNode) -> DaskOutcome:
        key = self._key(node)
        self._check_not_cancelled(key, node)
        if key not in self._futures:
            self.submit(node)
        outcome = node._outcome
        if not isinstance(outcome, DaskOutcome) or outcome.client is not self:
            outcome = DaskOutcome(self, node, self._futures[key])
        return outcome

    def result(self, node: DispatchNode, timeout: float | None = None) -> Any:
        """The node's value (submitting it first if this client has not)."""
        self._check_running()
        (node,) = _check_nodes([node], "result()")
        return self._outcome(node).result(timeout)

    def gather(self, nodes: Iterable[DispatchNode], timeout: float | None = None) -> list[Any]:
        """The values of `nodes`, in order."""
        self._check_running()
        outcomes = [self._outcome(n) for n in _check_nodes(nodes, "gather()")]
        try:
            return list(self._dask.gather([o.future for o in outcomes]))
        except Exception:
            for outcome in outcomes:
                if outcome.future.status != "finished":
                    outcome.result(timeout)
            raise

    @_synchronized
    def cancel(self, nodes: Iterable[DispatchNode]) -> None:
        """Stop `nodes` and their dependents and forget their results."""
        self._check_running()
        doomed: set[str] = set()
        stack = [self._key(n) for n in _check_nodes(nodes, "cancel()")]
        while stack:
            key = stack.pop()
            if key not in doomed:
                doomed.add(key)
                stack.extend(self._dependents.get(key, ()))
        futures = [self._futures.pop(k) for k in doomed if k in self._futures]
        self._cancelled |= doomed
        if futures:
            self._dask.expect_cancel_echo(cast(str, f.key) for f in futures)
            self._dask.cancel(futures)

    def replicate(self, nodes: Iterable[DispatchNode] | None = None) -> None:
        """Copy results onto every worker (default: everything submitted), and keep them there."""
        self._check_running()
        if nodes is None:
            futures = list(self._futures.values())
        else:
            futures = [self._outcome(n).future for n in _check_nodes(nodes, "replicate()")]
        if not futures:
            return
        self._dask.sync(_wait_futures, futures)
        keys = [f.key for f in futures]
        self._dask.run_on_scheduler(protect_replicas, keys=keys)
        self._dask.replicate(futures)

    @_synchronized
    def shutdown(self) -> None:
        """Forget everything this client submitted and disconnect; a second call raises."""
        if self.status != "running":
            raise DispatcherError(f"this Client of {self.scheduler_address} is already shut down")
        self.status = "closed"
        self._futures.clear()
        self._key_of.clear()
        self._dependents.clear()
        self._dask.close()

    close = shutdown

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status == "running":
            self.shutdown()

    def __repr__(self) -> str:
        return (
            f"<pydispatch.Client {self.scheduler_address} {self.status}, {len(self._futures)} keys>"
        )
