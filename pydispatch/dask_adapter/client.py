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
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, Literal, NamedTuple, ParamSpec, TypeVar, cast

import distributed
from dask.utils import key_split
from distributed import Future

from ..address import Address
from ..annotations import ANNOTATIONS
from ..errors import (
    CancelledError,
    DependencyError,
    DispatcherError,
    ExecutorError,
)
from ..gcpause import gc_paused
from ..graph import DispatchNode, check_nodes
from ..plan import Plan
from ..retry import RetryPolicy
from .blocks import (
    BlockValues,
    BlockWithErrors,
    Failure,
    UpstreamFailed,
)
from .compat import task_prefix_durations
from .connection import normalize_address
from .fusion import Durations, may_fuse, plan_groups
from .keys import KeyMaker
from .ledger import Ledger
from .outcomes import DaskOutcome, OutputBatch, remote_trace
from .replication import protect_replicas
from .session import SchedulerTarget, Session
from .shipping import ShipMode, Shipper
from .tasks import TaskBuilder, with_annotations
from .transfer import CheckingShipper

__all__ = [
    "Client",
    "DaskOutcome",
    "Keep",
    "OutputBatch",
    "Submission",
    "remote_trace",
]


class Submission(NamedTuple):
    """What `Client.submit_plan` did: keys, the future holding each node key, new tasks."""

    keys: KeyMaker
    futures: dict[str, Future]
    """Node key -> the future of the task computing it (its own, or its block)."""
    created: dict[int, Future]
    """The futures, by `id`, of the tasks this submission created."""


Keep = Literal["all", "outputs"]
"""What a run leaves on the cluster: every node's result, or only the outputs'."""

THREADS_FRESH = 60.0
"""Seconds the cluster's thread count is trusted before it is asked again."""


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
        fuse: bool = True,
        durations: Durations | None = None,
    ):
        self.id = f"pydispatch-client-{uuid.uuid4()}"
        self.fuse = fuse
        """Whether submissions fuse nodes into blocks (see `fusion`)."""
        self.orphans: set[str] = set()
        """Keys whose block went with a cancelled block-mate: computed again when asked for."""
        self._unkept: set[str] = set()
        """Keys whose block (of a keep="outputs" run) does not keep their value: another
        submission that needs one computes it again instead of reading that block."""
        self._reused: weakref.WeakSet[Future] = weakref.WeakSet()
        """Futures a submission took over from an earlier one: the keep="outputs"
        run that created one does not release it when it ends."""
        self.durations = durations if durations is not None else Durations()
        """What is known of node durations, by label (learned, or declared)."""
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

    def check_not_cancelled(self, key: str, node: DispatchNode) -> None:
        if self._ledger.is_cancelled(key):
            raise CancelledError(
                f"node {node.label!r} (key {key}) was cancelled, and its result is gone; "
                "submit it again to recompute it"
            )

    @_synchronized
    def submit_plan(
        self,
        plan: Plan,
        restrictions: Mapping[DispatchNode, Sequence[str]] | None = None,
        keep: Keep = "all",
    ) -> Submission:
        """Submit every node of `plan` not already held, in one update.

        Returns the keys, the future holding each node key (its own task's, or its
        block's), and the futures of the tasks this update created (the others were
        held from earlier). With `keep="outputs"`, blocks
        return only the values of the plan's outputs and of members other tasks need.
        """
        self._check_running()
        with gc_paused():  # keying and building the tasks: a burst of small allocations
            return self._submit_plan(plan, restrictions, keep)

    def _submit_plan(
        self,
        plan: Plan,
        restrictions: Mapping[DispatchNode, Sequence[str]] | None,
        keep: Keep,
    ) -> Submission:
        keys = KeyMaker(plan.given)
        order = plan.order
        # every node's key and its dependencies' keys, found once for all the steps below
        node_keys = keys.ordered(order)
        dep_keys = {id(n): [keys(d) for d in plan.dependencies(n)] for n in order}
        retired: set[str] = set()
        todo: list[DispatchNode] = []
        seen: set[str] = set()
        for node, key in zip(order, node_keys, strict=True):
            if key not in seen:
                seen.add(key)
                if not self._held(key, retired):
                    todo.append(node)
        restricted = {id(n) for n in restrictions or {}}
        groups = self._groups(plan, keys, todo, restricted, dep_keys)
        output_keys = {keys(n) for n in plan.outputs}
        keep_member = None
        if keep == "outputs":
            group_of = {keys(n): i for i, group in enumerate(groups) for n in group}
            exported = set(output_keys)
            for i, group in enumerate(groups):
                for node in group:
                    for dep in dep_keys[id(node)]:
                        if group_of.get(dep, i) != i:
                            exported.add(dep)
            keep_member = exported.__contains__
        singles = {keys(g[0]) for g in groups if len(g) == 1}
        guarded = frozenset(
            dep
            for group in (groups if singles else ())
            if len(group) > 1
            for node in group
            for dep in dep_keys[id(node)]
            if dep in singles
        )
        builder = TaskBuilder(
            keys,
            plan.given,
            self._ship,
            self._task_functions,
            self._policy,
            self._holder_key,
            keep_member,
            guarded,
        )
        for group in groups:
            builder.add(group, retired.__contains__)
        dask = self._session.dask
        orphans = self.orphans
        for node, key in zip(order, node_keys, strict=True):
            self._ledger.record(node, key, dep_keys[id(node)])
            if orphans:
                orphans.discard(key)
        tasks = builder.tasks
        created: dict[int, Future] = {}
        if tasks:
            annotations = self._annotations(plan, node_keys, builder.holders, tasks, restrictions)
            graph = with_annotations(tasks, annotations)
            new = dict(zip(tasks, dask.get(graph, list(tasks), sync=False), strict=True))
            created = {id(f): f for f in new.values()}
            for node_key, task_key in builder.holders.items():
                self._ledger.hold(node_key, new[task_key])
                self._unkept.discard(node_key)
                if keep_member is not None and task_key != node_key and not keep_member(node_key):
                    self._unkept.add(node_key)
        if self.fuse:
            for group in groups:
                if len(group) == 1 and self.durations.of(group[0]) is None:
                    key = keys(group[0])
                    self.durations.ran_unfused(group[0].label, key_split(key))
        futures: dict[str, Future] = {}
        for node, key in zip(order, node_keys, strict=True):
            # every node object, also those sharing a key with another
            future = futures.get(key)
            if future is None:
                future = futures[key] = cast(Future, self._ledger.future(key))
                if id(future) not in created:
                    self._reused.add(future)
            node.outcome = DaskOutcome(self, node, key, future)
        return Submission(keys, futures, created)

    def _annotations(
        self,
        plan: Plan,
        node_keys: Sequence[str],
        holders: Mapping[str, str],
        tasks: Mapping[str, Any],
        restrictions: Mapping[DispatchNode, Sequence[str]] | None,
    ) -> dict[str, dict[str, Any]]:
        """The dask annotations of each new task (by task key): the node's own, and
        `submit(workers=)`. Annotated nodes are never fused, so each has its own task.
        `node_keys` are the keys of `plan.order`'s nodes, in order."""
        found: dict[str, dict[str, Any]] = {}
        for node, node_key in zip(plan.order, node_keys, strict=True):
            if not (restrictions and node in restrictions) and all(
                getattr(node, name, None) is None for name in ANNOTATIONS
            ):
                continue  # nothing to annotate (the common case, checked cheaply)
            key = holders.get(node_key, node_key)
            if key not in tasks or key in found:
                continue
            wanted = node.annotations()
            if restrictions and node in restrictions:
                wanted["workers"] = list(restrictions[node])
            if wanted:
                found[key] = wanted
        if found:
            labels = {
                holders.get(k, k): n.label for n, k in zip(plan.order, node_keys, strict=True)
            }
            self._check_placeable(found, labels)
        return found

    def _check_placeable(
        self, annotations: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str]
    ) -> None:
        """`ExecutorError` for a node no connected worker can ever run (resources, workers).

        dask would keep such a task waiting forever. With no worker connected at all,
        nothing is decided: the run waits for workers as usual.
        """
        workers = self._session.dask.scheduler_info(n_workers=-1)["workers"]
        if not workers:
            return
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

    def _groups(
        self,
        plan: Plan,
        keys: KeyMaker,
        todo: list[DispatchNode],
        restricted: set[int],
        dep_keys: Mapping[int, list[str]],
    ) -> list[list[DispatchNode]]:
        """The nodes of `todo` in groups, each one dask task (see `fusion.plan_groups`)."""
        if not self.fuse or len(todo) < 2:
            return [[n] for n in todo]
        durations = self.durations
        if durations.pending:
            wanted = {key_split(keys(n)) for n in todo if durations.of(n) is None}
            asked = [p for p in durations.pending if p in wanted]
            if asked:
                try:
                    means = task_prefix_durations(self._session.dask, asked)
                except Exception:  # statistics are a hint: run unfused without them
                    means = {}
                durations.learn_means(means)

        alone = restricted | self._waiting_for_unfinished(keys, todo, dep_keys)

        def fusable(node: DispatchNode) -> bool:
            return id(node) not in alone and may_fuse(node)

        return plan_groups(
            todo,
            keys,
            plan.dependencies,
            fusable if alone else may_fuse,
            durations.of,
            self._thread_count,
        )

    def _waiting_for_unfinished(
        self, keys: KeyMaker, todo: list[DispatchNode], dep_keys: Mapping[int, list[str]]
    ) -> set[int]:
        """The nodes of `todo` (by `id`) that wait, directly or through other nodes of
        `todo`, for a task an earlier update submitted and that has not finished.

        Such a task may still fail, and dask then fails every task waiting for it
        without running it: a block holding one of these nodes would fail its
        unrelated members too (and keep them waiting meanwhile). They keep a task
        each, so a failure reaches only the nodes that depend on it.
        """
        in_todo = {keys(n) for n in todo}
        waiting: set[str] = set()
        found: set[int] = set()
        for node in todo:  # dependencies first
            for dep in dep_keys[id(node)]:
                if dep in waiting or (dep not in in_todo and self._unfinished(dep)):
                    waiting.add(keys(node))
                    found.add(id(node))
                    break
        return found

    def _unfinished(self, key: str) -> bool:
        """Whether this client holds `key` in a task that has not finished."""
        future = self._ledger.future(key)
        return future is not None and not future.done()

    def _thread_count(self) -> int:
        """The cluster's worker threads (asked at most every `THREADS_FRESH` seconds)."""
        known = self.durations.threads
        if known is not None and time.monotonic() - known[0] < THREADS_FRESH:
            return known[1]
        try:
            threads = max(sum(self._session.dask.nthreads().values()), 1)
        except Exception:
            threads = 1
        self.durations.threads = (time.monotonic(), threads)
        return threads

    def _holder_key(self, key: str) -> str | None:
        """The task key of the live future holding node `key`, if this client holds one."""
        future = self._ledger.future(key)
        return None if future is None else cast(str, future.key)

    def _held(self, key: str, retired: set[str]) -> bool:
        """Whether this client holds a live future for `key`.

        A new run of a node that failed runs it again: a failed task (or a block with
        a failure) is not held; its task key goes to `retired`, and the node is
        submitted under a fresh task key (see `TaskBuilder.add`).
        """
        future = self._ledger.future(key)
        if future is None:
            return False
        if key in self._unkept:  # its block does not keep its value: compute it again
            return False
        if future.status == "cancelled":  # by dask or another client: submit it anew
            self._ledger.drop(key)
            return False
        if future.status == "error" or future.type in (BlockWithErrors, Failure):
            retired.add(cast(str, future.key))
            self._ledger.drop(key)
            return False
        return True

    def learn(self, holder: Any) -> None:
        """Learn node durations from a block's value (its own timings)."""
        if isinstance(holder, BlockValues) and holder.timings:
            self.durations.learn(holder.timings)

    def holder_values(self, futures: Iterable[Future]) -> dict[int, Any]:
        """The values of finished `futures` (by `id`), fetched in one round trip."""
        unique = {id(f): f for f in futures if f.status == "finished"}
        if not unique:
            return {}
        values = self._session.dask.gather(list(unique.values()))
        for value in values:
            self.learn(value)
        return dict(zip(unique, values, strict=True))

    def batch_outputs(self, outputs: Iterable[DispatchNode]) -> OutputBatch:
        """Group the outcomes of a run's `outputs`, so reading them costs one round trip."""
        outcomes = [o for o in (n.outcome for n in outputs) if isinstance(o, DaskOutcome)]
        batch = OutputBatch(self, (o.future for o in outcomes if not o.released))
        for outcome in outcomes:
            outcome.batch = batch
        return batch

    @_synchronized
    def release_intermediates(
        self,
        plan: Plan,
        keys: Callable[[DispatchNode], str],
        created: Mapping[int, Future],
    ) -> None:
        """Stop holding the results of `plan`'s nodes that are not outputs (keep="outputs").

        Only results of tasks in `created` (made for this run) go: an earlier run's
        results that this run reused stay.
        """
        outputs = {keys(n) for n in plan.outputs}
        for node in plan.order:
            key = keys(node)
            holder = self._ledger.future(key)
            if key in outputs or holder is None or id(holder) not in created:
                continue
            if holder in self._reused:  # another submission took it over
                continue
            self._ledger.drop(key)
            self._unkept.discard(key)
            outcome = node.outcome
            if isinstance(outcome, DaskOutcome) and outcome.client is self:
                outcome.release()

    @_synchronized
    def release_task(self, future: Future, nodes: Iterable[DispatchNode]) -> None:
        """Stop holding `future`, the task of `nodes` (intermediates of a keep="outputs" run),
        unless a later submission took it over."""
        if future in self._reused:
            return
        for node in nodes:
            key = self._key(node)
            if self._ledger.future(key) is future:
                self._ledger.drop(key)
                self._unkept.discard(key)
            outcome = node.outcome
            if isinstance(outcome, DaskOutcome) and outcome.client is self:
                outcome.release()
        future.release()

    def upstream_error(self, node: DispatchNode, failed_key: str) -> DependencyError:
        """The error of `node`, which did not run because a dependency failed."""
        for dep in node.dependencies():
            try:
                self._outcome(dep).result()
            except DependencyError as upstream:
                return DependencyError(upstream, upstream.trace, node)
            except Exception as err:
                return DependencyError(err, "", node)
        return DependencyError(UpstreamFailed(failed_key), "", node)

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
        self.check_not_cancelled(key, node)
        if self._ledger.future(key) is None:
            self.submit(node)
        outcome = node.outcome
        if isinstance(outcome, DaskOutcome) and outcome.released:
            outcome = None
        if not isinstance(outcome, DaskOutcome) or outcome.client is not self:
            outcome = DaskOutcome(self, node, key, cast(Future, self._ledger.future(key)))
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
        holders = {id(o.future): o.future for o in outcomes}
        try:
            values = dict(
                zip(holders, self._session.dask.gather(list(holders.values())), strict=True)
            )
        except Exception:
            for outcome in outcomes:
                if outcome.future.status != "finished":
                    outcome.result(timeout)
            raise
        for value in values.values():
            self.learn(value)
        return [o.value_from(values[id(o.future)]) for o in outcomes]

    @_synchronized
    def cancel(self, nodes: Iterable[DispatchNode]) -> None:
        """Stop `nodes` and their dependents and forget their results."""
        self._check_running()
        doomed = self._ledger.downstream(self._key(n) for n in check_nodes(nodes, "cancel()"))
        self._cancel_keys(doomed)

    def stop(self, nodes: Iterable[DispatchNode], created: Mapping[int, Future]) -> None:
        """Cancel the tasks of `nodes` that one submission created (its
        `Submission.created`): a run stopping early (a failure with `throw_error`, a
        timeout). Tasks it reused from earlier submissions (a `dispatch`, another
        run, `submit`) are theirs and keep running, and dependents recorded by
        other submissions are not followed."""
        self._check_running()
        mine = set()
        for node in nodes:
            key = self._key(node)
            future = self._ledger.future(key)
            if future is not None and id(future) in created and future not in self._reused:
                mine.add(key)
        if mine:
            self._cancel_keys(mine)

    def _cancel_keys(self, doomed: set[str]) -> None:
        futures = list({id(f): f for f in self._ledger.cancel(doomed)}.values())
        blocks = {cast(str, f.key) for f in futures}
        for key in list(self._ledger.keys):  # block-mates: their block is going too
            holder = self._ledger.future(key)
            if holder is not None and holder.key in blocks:
                self._ledger.drop(key)
                self.orphans.add(key)
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
