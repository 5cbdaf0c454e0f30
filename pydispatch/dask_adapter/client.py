"""`Client`: submit nodes to a dask scheduler, then cancel, gather or replicate them.

A thin layer over `distributed.Client`: every node becomes a content-keyed
dask task; the client holds a dask future per submitted key, so results stay
on the cluster until they are cancelled, shut down or reset.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import distributed
from distributed import Future

from ..address import Address
from ..errors import (
    CancelledError,
    DependencyError,
    DispatcherError,
    ExecutorError,
    SchedulerLostError,
    SchedulerUnreachableError,
    TLSError,
    UnpicklableResultError,
)
from ..graph import DispatchNode, check_nodes
from ..plan import Plan
from ..retry import RetryPolicy
from ..tracebacks import format_user_frames
from .connection import check_seconds, normalize_address
from .keys import KeyMaker
from .ledger import Ledger
from .replication import protect_replicas
from .session import SchedulerTarget, Session
from .shipping import ShipMode, Shipper
from .tasks import build_tasks, with_annotations
from .transfer import CheckingShipper

__all__ = [
    "Client",
    "DaskOutcome",
    "SchedulerLostError",
    "SchedulerUnreachableError",
    "TLSError",
    "UnpicklableResultError",
    "remote_trace",
]


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
    """Submits nodes to a dask scheduler and fetches, cancels or replicates their results.

    `scheduler_address` is an address (default `127.0.0.1:8786`; any transport dask
    supports), a `distributed.Client` (used, never closed), or a dask cluster object
    (anything with `scheduler_address`, and its `security`); or give
    `scheduler_file=PATH` instead.
    """

    def __init__(
        self,
        scheduler_address: SchedulerTarget | None = None,
        *,
        scheduler_file: str | os.PathLike[str] | None = None,
        connect_timeout: float = 10.0,
        security: Any = None,
        ship_functions: ShipMode = "auto",
        retry_policy: RetryPolicy | None = None,
    ):
        self.id = f"pydispatch-client-{uuid.uuid4()}"
        self.status = "connecting"
        self._ship = Shipper(ship_functions)
        self._task_functions = CheckingShipper(self._ship)
        self._policy = retry_policy and dataclasses.replace(
            retry_policy, retry_on=tuple(self._ship(p) for p in retry_policy.retry_on)
        )
        self._lock = threading.RLock()  # runs from several threads share the bookkeeping
        self._ledger: Ledger[Future] = Ledger()
        try:
            self._session = Session.open(
                scheduler_address,
                scheduler_file=scheduler_file,
                security=security,
                connect_timeout=connect_timeout,
                name=self.id,
            )
        except BaseException:
            self.status = "closed"
            raise
        self.scheduler_address = self._session.address
        self.status = "running"

    @property
    def keys(self) -> set[str]:
        """Keys submitted by this client and not cancelled."""
        return self._ledger.keys

    def future_of(self, key: str) -> Future | None:
        """This client's live future for `key`, if it holds one."""
        return self._ledger.future(key)

    @property
    def dask_client(self) -> distributed.Client:
        """The underlying `distributed.Client`."""
        return self._session.dask

    @property
    def session(self) -> Session:
        """The connection to the scheduler (owned by this client, or borrowed)."""
        return self._session

    def _check_running(self) -> None:
        if self.status != "running":
            raise DispatcherError(
                f"this Client of {self.scheduler_address} is shut down; create a new Client"
            )

    def is_cancelled(self, key: str) -> bool:
        """Whether this client cancelled `key` (and has not submitted it again since)."""
        return self._ledger.is_cancelled(key)

    def _check_not_cancelled(self, key: str, node: DispatchNode) -> None:
        if self._ledger.is_cancelled(key):
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
        dask = self._session.dask
        if failed:  # a new run of a node that failed runs it again
            dask.retry(failed)
        for node in plan.order:
            self._ledger.record(node, keys(node), (keys(d) for d in plan.dependencies(node)))
        if tasks:
            graph = with_annotations(tasks, self._annotations(plan, keys, tasks, restrictions))
            new = dask.get(graph, list(tasks), sync=False)
            for key, future in zip(tasks, new, strict=True):
                self._ledger.hold(key, future)
        futures: dict[str, Future] = {}
        for node in plan.order:  # every node object, also those sharing a key with another
            key = keys(node)
            future = futures.setdefault(key, cast(Future, self._ledger.future(key)))
            node.outcome = DaskOutcome(self, node, future)
        return keys, futures

    def _annotations(
        self,
        plan: Plan,
        keys: KeyMaker,
        tasks: Mapping[str, Any],
        restrictions: Mapping[DispatchNode, Sequence[str]] | None,
    ) -> dict[str, dict[str, Any]]:
        """The dask annotations of each new task: the node's own, and `submit(workers=)`."""
        found: dict[str, dict[str, Any]] = {}
        for node in plan.order:
            key = keys(node)
            if key not in tasks or key in found:
                continue
            wanted = node.annotations()
            if restrictions and node in restrictions:
                wanted["workers"] = list(restrictions[node])
            if wanted:
                found[key] = wanted
        if found:
            self._check_placeable(found, plan, keys)
        return found

    def _check_placeable(
        self, annotations: Mapping[str, Mapping[str, Any]], plan: Plan, keys: KeyMaker
    ) -> None:
        """`ExecutorError` for a node no connected worker can ever run (resources, workers).

        dask would keep such a task waiting forever. With no worker connected at all,
        nothing is decided: the run waits for workers as usual.
        """
        workers = self._session.dask.scheduler_info(n_workers=-1)["workers"]
        if not workers:
            return
        labels = {keys(n): n.label for n in plan.order}
        for key, wanted in annotations.items():
            needed = wanted.get("resources") or {}
            if needed and not any(
                all(info.get("resources", {}).get(r, 0) >= amount for r, amount in needed.items())
                for info in workers.values()
            ):
                offered = sorted(
                    {r for info in workers.values() for r in info.get("resources", {})}
                )
                raise ExecutorError(
                    f"node {labels[key]!r} needs the worker resources {needed}, and no worker "
                    f"connected to {self.scheduler_address} has them (resources offered: "
                    f"{', '.join(offered) or 'none'}); start a worker with them, e.g. "
                    f"`pydispatch worker {self.scheduler_address} -- --resources "
                    f'"{" ".join(f"{r}={a}" for r, a in needed.items())}"`'
                )
            placement = wanted.get("workers")
            if placement and not any(
                normalize_address(w) in workers or w in workers for w in placement
            ):
                raise ExecutorError(
                    f"node {labels[key]!r} must run on {', '.join(placement)}, and no such "
                    f"worker is connected to {self.scheduler_address} (connected: "
                    f"{', '.join(sorted(workers))}); set node.workers to a connected worker"
                )

    def _held(self, key: str, failed: list[Future]) -> bool:
        """Whether this client holds a live future for `key` (failed ones go to `failed`)."""
        future = self._ledger.future(key)
        if future is None:
            return False
        if future.status == "cancelled":  # by dask or another client: submit it anew
            self._ledger.drop(key)
            return False
        if future.status == "error":
            failed.append(future)
        return True

    def submit(self, node: DispatchNode, workers: str | Sequence[str] | None = None) -> None:
        """Submit `node` and every dependency not yet submitted, in one update.

        `workers` (addresses) restricts where `node` itself runs.
        """
        (node,) = check_nodes([node], "submit()")
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
        known = set(self._session.dask.scheduler_info(n_workers=-1)["workers"])
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
        key = self._ledger.key_of(node)
        return key if key is not None else KeyMaker()(node)

    def _outcome(self, node: DispatchNode) -> DaskOutcome:
        key = self._key(node)
        self._check_not_cancelled(key, node)
        if self._ledger.future(key) is None:
            self.submit(node)
        outcome = node.outcome
        if not isinstance(outcome, DaskOutcome) or outcome.client is not self:
            outcome = DaskOutcome(self, node, cast(Future, self._ledger.future(key)))
        return outcome

    def result(self, node: DispatchNode, timeout: float | None = None) -> Any:
        """The node's value (submitting it first if this client has not)."""
        self._check_running()
        (node,) = check_nodes([node], "result()")
        return self._outcome(node).result(timeout)

    def gather(self, nodes: Iterable[DispatchNode], timeout: float | None = None) -> list[Any]:
        """The values of `nodes`, in order."""
        self._check_running()
        outcomes = [self._outcome(n) for n in check_nodes(nodes, "gather()")]
        try:
            return list(self._session.dask.gather([o.future for o in outcomes]))
        except Exception:
            for outcome in outcomes:
                if outcome.future.status != "finished":
                    outcome.result(timeout)
            raise

    @_synchronized
    def cancel(self, nodes: Iterable[DispatchNode]) -> None:
        """Stop `nodes` and their dependents and forget their results."""
        self._check_running()
        doomed = self._ledger.downstream(self._key(n) for n in check_nodes(nodes, "cancel()"))
        futures = self._ledger.cancel(doomed)
        if futures:
            self._session.expect_cancel_echo(cast(str, f.key) for f in futures)
            self._session.dask.cancel(futures)

    def replicate(self, nodes: Iterable[DispatchNode] | None = None) -> None:
        """Copy results onto every worker (default: everything submitted), and keep them there."""
        self._check_running()
        if nodes is None:
            futures = self._ledger.futures()
        else:
            futures = [self._outcome(n).future for n in check_nodes(nodes, "replicate()")]
        if not futures:
            return
        dask = self._session.dask
        with dask.as_current():
            distributed.wait(futures)
        dask.run_on_scheduler(protect_replicas, keys=[f.key for f in futures])
        dask.replicate(futures)

    @_synchronized
    def shutdown(self) -> None:
        """Forget everything this client submitted and disconnect; a second call raises.

        A `distributed.Client` the user passed in stays open: only this client's
        futures are released.
        """
        if self.status != "running":
            raise DispatcherError(f"this Client of {self.scheduler_address} is already shut down")
        self.status = "closed"
        futures = self._ledger.futures()
        self._ledger.clear()
        if self._session.owned:
            self._session.close()
        else:
            for future in futures:
                future.release()

    def close(self) -> None:
        """`shutdown()`, except that closing a closed client does nothing (like file.close())."""
        with self._lock:
            if self.status == "running":
                self.shutdown()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pydispatch.Client {self.scheduler_address} {self.status}, {len(self.keys)} keys>"
