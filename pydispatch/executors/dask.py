"""`DaskExecutor`: runs graphs on a dask distributed scheduler, one update per run."""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import ssl
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import distributed
from distributed import Future

from ..dask_adapter.blocks import BlockWithErrors, Failure, Upstream, entry_of, failed_in
from ..dask_adapter.client import Client, Keep
from ..dask_adapter.compat import cancel_reason
from ..dask_adapter.fusion import Durations
from ..dask_adapter.outcomes import remote_trace
from ..dask_adapter.session import SchedulerTarget
from ..dask_adapter.shipping import ShipMode
from ..errors import (
    CancelledError,
    DependencyError,
    NoWorkerWarning,
    RunTimeoutError,
    SchedulerLostError,
)
from ..graph import DispatchGraph, DispatchNode
from ..plan import Plan
from ..progress import NoProgress, Progress
from ..results import RunResults
from ..retry import Backoff, RetryPredicate
from .base import Executor, RunReport

CHECK_EVERY = 2.0
"""Seconds between checks, while waiting, that the scheduler and a worker are there."""


LOST = "scheduler-connection-lost"
"""dask's reason for cancelling every future of a client that lost its scheduler."""

KEEPS = ("all", "outputs")
"""The values `keep=` accepts."""

FLAWED = (BlockWithErrors, Failure)
"""Types of finished tasks in which a node failed (a block, or a guarded unfused node)."""

_RUN_KEEP: contextvars.ContextVar[Keep | None] = contextvars.ContextVar("keep", default=None)
"""The `keep=` of the run in progress in this thread (None: the executor's)."""


def failed(future: Future) -> bool:
    """Whether a finished task failed, or is a block in which a node failed."""
    return future.status == "error" or (future.status == "finished" and future.type in FLAWED)


def _check_keep(keep: Any) -> Keep:
    if keep not in KEEPS:
        raise ValueError(f"keep must be 'all' or 'outputs', got {keep!r}")
    return keep


def _sink_futures(
    plan: Plan, keys: Callable[[DispatchNode], str], futures: dict[str, Future]
) -> list[Future]:
    """The futures of the nodes nothing else in the plan depends on."""
    needed = {id(dep) for node in plan.order for dep in plan.dependencies(node)}
    sinks = {id(f): f for f in (futures[keys(n)] for n in plan.order if id(n) not in needed)}
    return list(sinks.values())


DASHBOARD_PROBE_TIMEOUT = 5.0
"""Seconds to wait for the dashboard's page when checking that it is live."""


@dataclass(frozen=True)
class Dashboard:
    """Where dask's live dashboard is (`link`), or why there is none (`problem`)."""

    link: str | None
    problem: str | None = None

    def __str__(self) -> str:
        return self.link if self.link is not None else f"unavailable: {self.problem}"


def _no_dashboard(scheduler: str) -> Dashboard:
    return Dashboard(
        None,
        f"the scheduler at {scheduler} serves no dashboard (it was started with "
        "--no-dashboard or dashboard_address=None)",
    )


def probe_dashboard(
    link: str, scheduler: str, timeout: float = DASHBOARD_PROBE_TIMEOUT
) -> Dashboard:
    """`link` if it serves dask's live (bokeh) dashboard; otherwise why it does not.

    A link that is not an http(s) URL (a proxy path from dask's
    `distributed.dashboard.link` setting) cannot be checked here and is kept.
    """
    if not link.startswith(("http://", "https://")):
        return Dashboard(link)
    context = None
    if link.startswith("https://"):
        # Only the page's text is read, to tell the dashboard from an error page; a
        # cluster's own TLS certificate must not make a live dashboard look dead.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(link, timeout=timeout, context=context) as response:
            page = response.read(1_000_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        if err.code == 404:  # the scheduler's HTTP server runs, without the dashboard
            return _no_dashboard(scheduler)
        return Dashboard(None, f"the dashboard at {link} answers with an error ({err})")
    except (OSError, ValueError) as err:
        return Dashboard(
            None,
            f"the dashboard at {link} does not answer ({err}); check that its port is "
            "reachable from here",
        )
    if "Dask needs bokeh" in page:
        return Dashboard(
            None,
            f"the scheduler serving {link} lacks bokeh, which dask's dashboard needs: "
            'install "bokeh>=3.1.0" where the scheduler runs, then restart it',
        )
    return Dashboard(link)


class _Watch:
    """Waits for a run's futures to finish, told by each future's done callback.

    dask calls a future's done callbacks on a thread of its own; they only put the
    future on a queue, and the waiting thread (the caller of `run`) does the rest.
    """

    def __init__(
        self,
        futures: list[Future],
        stop_at_error: bool,
        on_finished: Callable[[Future], None] | None,
    ):
        self.remaining = len(futures)
        self.stop_at_error = stop_at_error
        self.on_finished = on_finished
        self.first_error: Future | None = None
        self.lost = False
        """Whether the client lost the scheduler (dask then cancels every future)."""
        self.futures = futures
        self._done: queue.SimpleQueue[Future] = queue.SimpleQueue()
        for future in futures:
            future.add_done_callback(self._done.put)

    @property
    def over(self) -> bool:
        return (
            self.remaining == 0
            or self.lost
            or (self.stop_at_error and self.first_error is not None)
        )

    def _finished(self, future: Future) -> None:
        self.remaining -= 1
        if future.status == "cancelled" and cancel_reason(future) == LOST:
            self.lost = True
        if failed(future) and self.first_error is None:
            self.first_error = future
        if self.on_finished is not None:
            self.on_finished(future)

    def wait(self, seconds: float) -> bool:
        """True once the run is over; False if `seconds` passed first."""
        deadline = time.monotonic() + seconds
        while not self.over:
            try:
                future = self._done.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return False
            self._finished(future)
        return True


class _Releaser:
    """keep="outputs": drops each intermediate task of a run once every task needing it is done.

    What dask itself does with a graph's intermediates. Only tasks created for this
    run, finished without a failure, and not holding an output, are dropped.
    """

    def __init__(
        self,
        client: Client,
        plan: Plan,
        keys: Callable[[DispatchNode], str],
        futures: dict[str, Future],
        created: Mapping[int, Future],
    ):
        self.client = client
        self.outputs = {id(futures[keys(n)]) for n in plan.outputs}
        self.created = created
        self.waiting: dict[int, int] = {}
        self.needs: dict[int, dict[int, Future]] = {}
        self.nodes_of: dict[int, list[DispatchNode]] = {}
        for node in plan.order:
            task = futures[keys(node)]
            self.nodes_of.setdefault(id(task), []).append(node)
            needs = self.needs.setdefault(id(task), {})
            for dep in plan.dependencies(node):
                source = futures[keys(dep)]
                if source is not task and id(source) not in needs:
                    needs[id(source)] = source
                    self.waiting[id(source)] = self.waiting.get(id(source), 0) + 1
        self.released: set[int] = set()

    def finished(self, future: Future) -> None:
        """`future` is done: drop what only it still needed."""
        for source in self.needs.pop(id(future), {}).values():
            self.waiting[id(source)] -= 1
            if (
                self.waiting[id(source)] == 0
                and id(source) in self.created
                and id(source) not in self.outputs
                and source.status == "finished"
                and source.type not in FLAWED
            ):
                self.released.add(id(source))
                self.client.release_task(source, self.nodes_of[id(source)])


class DaskExecutor(Executor):
    """Runs graphs on the dask scheduler at `scheduler_address`.

    `scheduler_address` is an address (default `127.0.0.1:8786`; any transport dask
    supports), a `distributed.Client` (used, never closed), or a dask cluster object
    (anything with `scheduler_address`, and its `security`); or give
    `scheduler_file=PATH` instead.

    Each run becomes one dask graph sent in one update; results stay on the
    cluster until asked for (`node.result()`), cancelled, or `reset()`.

    `fuse=True` (the default) runs linear chains, and blocks of nodes known to be
    short, as one dask task each (every node keeps its own result, error, retries
    and progress); `task_durations` declares seconds per node label. `keep="all"`
    (the default) keeps every node's result on the cluster until `reset()`;
    `keep="outputs"` keeps only the outputs' (also per run: `run(..., keep=)`).
    """

    def __init__(
        self,
        scheduler_address: SchedulerTarget | None = None,
        *,
        scheduler_file: str | os.PathLike[str] | None = None,
        retries: int = 0,
        retry_on: Iterable[RetryPredicate] = (),
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        security: Any = None,
        ship_functions: ShipMode = "auto",
        fuse: bool = True,
        keep: Keep = "all",
        task_durations: Mapping[str, float] | None = None,
    ):
        super().__init__(retries, retry_on, backoff=backoff)
        if not isinstance(fuse, bool):
            raise TypeError(f"fuse must be True or False, got {fuse!r}")
        self.keep: Keep = _check_keep(keep)
        """What runs leave on the cluster by default: "all" results, or the "outputs"'."""
        self.durations = Durations(task_durations)
        """What the executor knows of node durations, by label (kept across `reset()`)."""
        self._target = scheduler_address
        self._client_options: dict[str, Any] = {
            "scheduler_file": scheduler_file,
            "connect_timeout": connect_timeout,
            "security": security,
            "ship_functions": ship_functions,
            "retry_policy": self._policy
            if self._policy.retries and self._policy.retry_on
            else None,
            "fuse": fuse,
            "durations": self.durations,
        }
        self._cluster: Any = None
        self._dashboard: tuple[Client, Dashboard] | None = None
        self.client = Client(scheduler_address, **self._client_options)
        self._warned_no_worker = False

    @classmethod
    def local(
        cls,
        n_workers: int | None = None,
        threads_per_worker: int | None = None,
        *,
        secure: bool = False,
        retries: int = 0,
        retry_on: Iterable[RetryPredicate] = (),
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        ship_functions: ShipMode = "auto",
        fuse: bool = True,
        keep: Keep = "all",
        task_durations: Mapping[str, float] | None = None,
        **cluster_options: Any,
    ) -> DaskExecutor:
        """An executor owning an embedded cluster: a scheduler and worker processes on 127.0.0.1.

        Every executor option is accepted; the other keyword arguments go to
        `distributed.LocalCluster`.
        """
        from ..dask_adapter.local_cluster import start_local_cluster

        cluster, security = start_local_cluster(
            n_workers, threads_per_worker, secure=secure, **cluster_options
        )
        try:
            executor = cls(
                cluster.scheduler_address,
                retries=retries,
                retry_on=retry_on,
                backoff=backoff,
                connect_timeout=connect_timeout,
                ship_functions=ship_functions,
                security=security,
                fuse=fuse,
                keep=keep,
                task_durations=task_durations,
            )
        except BaseException:
            cluster.close()
            raise
        executor._cluster = cluster
        return executor

    @property
    def scheduler_address(self) -> str:
        return self.client.scheduler_address

    @property
    def dashboard_link(self) -> str | None:
        """The address of dask's live dashboard; None when it is disabled or unavailable.

        `dashboard` says why there is none.
        """
        return self.dashboard.link

    @property
    def dashboard(self) -> Dashboard:
        """dask's live dashboard for this scheduler: its link, or why there is none.

        The link is checked once (per connection) by fetching its page, so a
        dashboard that is disabled, unreachable, or missing bokeh is reported
        as such instead of as a dead link.
        """
        cached = self._dashboard
        if cached is not None and cached[0] is self.client:
            return cached[1]
        dashboard = self._find_dashboard()
        self._dashboard = (self.client, dashboard)
        return dashboard

    def _find_dashboard(self) -> Dashboard:
        dask = self.client.dask_client
        try:
            services = dask.scheduler_info(n_workers=0).get("services", {})
            link = dask.dashboard_link if "dashboard" in services else None
        except Exception as err:
            return Dashboard(
                None, f"cannot ask the scheduler at {self.scheduler_address} about it ({err})"
            )
        if not link:
            return _no_dashboard(self.scheduler_address)
        return probe_dashboard(str(link), self.scheduler_address)

    @property
    def fuse(self) -> bool:
        """Whether runs fuse chains and blocks of short nodes into fewer dask tasks."""
        return bool(self._client_options["fuse"])

    def run(
        self,
        graph_or_nodes: DispatchGraph | DispatchNode | Iterable[DispatchNode],
        inputs: Iterable[DispatchNode] = (),
        *,
        input_map: Mapping[DispatchNode, Any] | None = None,
        throw_error: bool = True,
        timeout: float | None = None,
        progress: bool | Progress = False,
        keep: Keep | None = None,
    ) -> RunResults:
        """`Executor.run`; `keep` ("all" or "outputs") overrides the executor's for this run."""
        token = _RUN_KEEP.set(None if keep is None else _check_keep(keep))
        try:
            return super().run(
                graph_or_nodes,
                inputs,
                input_map=input_map,
                throw_error=throw_error,
                timeout=timeout,
                progress=progress,
            )
        finally:
            _RUN_KEEP.reset(token)

    def _execute(
        self, plan: Plan, *, throw_error: bool, timeout: float | None, progress: Progress
    ) -> RunReport:
        # the executor's client is dask's current client during a run, so dask's
        # diagnostics (get_task_stream, performance_report, progress) see it
        with self.client.dask_client.as_current():
            return self._run_plan(plan, throw_error, timeout, progress)

    def _run_plan(
        self, plan: Plan, throw_error: bool, timeout: float | None, progress: Progress
    ) -> RunReport:
        status = self.client.dask_client.status
        if self.client.status == "running" and status not in ("running", "connecting"):
            raise SchedulerLostError(
                f"the connection to the dask scheduler at {self.scheduler_address} was lost "
                f"before this run (client {status}); check that the scheduler is running, "
                "then call executor.reset() or create a new executor"
            )
        keep = _RUN_KEEP.get() or self.keep
        keys, futures, created = self.client.submit_plan(plan, keep=keep)
        tasks = list({id(f): f for f in futures.values()}.values())
        callbacks: list[Callable[[Future], None]] = []
        releaser = None
        if keep == "outputs":
            releaser = _Releaser(self.client, plan, keys, futures, created)
            callbacks.append(releaser.finished)
        if not isinstance(progress, NoProgress):
            nodes_of: dict[int, list[DispatchNode]] = {}
            for node in plan.order:
                nodes_of.setdefault(id(futures[keys(node)]), []).append(node)

            def report_progress(future: Future) -> None:
                holder = None
                if future.status == "finished" and future.type in FLAWED:
                    holder = self.client.holder_values([future]).get(id(future))
                for node in nodes_of[id(future)]:
                    ok = future.status == "finished" and not failed_in(holder, keys(node))
                    progress.node_finished(node, ok)

            callbacks.insert(0, report_progress)
        on_finished: Callable[[Future], None] | None = None
        if callbacks:

            def every_callback(future: Future) -> None:
                for callback in callbacks:
                    callback(future)

            on_finished = every_callback

        deadline = None if timeout is None else time.monotonic() + timeout
        # Without a progress display, watching the sinks is enough at first: a sink is
        # done only once everything it depends on is. Stragglers are watched after.
        first = tasks if on_finished is not None else _sink_futures(plan, keys, futures)
        watch = self._watch(first, throw_error, on_finished, plan, deadline, timeout, created)
        while not (throw_error and watch.first_error is not None) and not watch.lost:
            stragglers = [f for f in tasks if not f.done()]
            if not stragglers:
                break
            first_error = watch.first_error
            watch = self._watch(
                stragglers, throw_error, on_finished, plan, deadline, timeout, created
            )
            watch.first_error = first_error or watch.first_error
        if watch.lost or (
            self.client.dask_client.status != "running"
            and any(f.status == "cancelled" for f in tasks)
        ):
            raise self._lost_error(tasks, plan)
        if throw_error and watch.first_error is not None:
            pending = [n for n in plan.order if not futures[keys(n)].done()]
            if pending:
                self.client.stop(pending, created)
        released = set() if releaser is None else releaser.released
        stopped = throw_error and watch.first_error is not None
        report = self._report(plan, keys, futures, tasks, watch.first_error, released, stopped)
        if keep == "outputs":
            self.client.release_intermediates(plan, keys, created)
        return report

    def _watch(
        self,
        futures: list[Future],
        stop_at_error: bool,
        on_finished: Callable[[Future], None] | None,
        plan: Plan,
        deadline: float | None,
        timeout: float | None,
        created: Mapping[int, Future],
    ) -> _Watch:
        """Wait until `futures` are done (or the first error, or the deadline)."""
        watch = _Watch(futures, stop_at_error, on_finished)
        self._wait(watch, plan, deadline, timeout, created)
        return watch

    def _wait(
        self,
        watch: _Watch,
        plan: Plan,
        deadline: float | None,
        timeout: float | None,
        created: Mapping[int, Future],
    ) -> None:
        dask = self.client.dask_client
        lost_since: float | None = None
        while True:
            left = (
                CHECK_EVERY if deadline is None else min(CHECK_EVERY, deadline - time.monotonic())
            )
            if watch.wait(max(left, 0.0)):
                return
            now = time.monotonic()
            if dask.status == "running":
                lost_since = None
            elif lost_since is None:
                lost_since = now
            if lost_since is not None and (
                dask.status not in ("running", "connecting")
                or now - lost_since >= self._client_options["connect_timeout"]
            ):
                raise self._lost_error(watch.futures, plan)
            workers = self._worker_count()
            if deadline is not None and time.monotonic() >= deadline:
                unfinished = [n for n in plan.order if not n.done()]
                self.client.stop(unfinished, created)
                raise RunTimeoutError(self._timeout_message(timeout, unfinished, workers))
            if workers == 0 and not self._warned_no_worker:
                self._warned_no_worker = True
                warnings.warn(
                    f"no worker is connected to the dask scheduler at {self.scheduler_address}; "
                    f"the run waits for one. Start workers with "
                    f"`pydispatch worker {self.scheduler_address}`",
                    NoWorkerWarning,
                    stacklevel=4,
                )

    def _lost_error(self, futures: Iterable[Future], plan: Plan) -> SchedulerLostError:
        unfinished = sum(not f.done() or f.status == "cancelled" for f in futures)
        return SchedulerLostError(
            f"lost the connection to the dask scheduler at {self.scheduler_address} "
            f"during a run ({unfinished} of {len(plan.order)} nodes unfinished); "
            "check that the scheduler is running, then run again"
        )

    def _worker_count(self) -> int | None:
        try:
            return len(self.client.dask_client.nthreads())
        except Exception:
            return None

    def _timeout_message(
        self, timeout: float | None, unfinished: list[DispatchNode], workers: int | None
    ) -> str:
        names = ", ".join(repr(n.label) for n in unfinished[:5])
        more = f" and {len(unfinished) - 5} more" if len(unfinished) > 5 else ""
        message = (
            f"the run did not finish within timeout={timeout}s: still waiting for {names}{more}"
        )
        if workers == 0:
            message += (
                f"; no worker is connected to the dask scheduler at {self.scheduler_address}: "
                f"start one with `pydispatch worker {self.scheduler_address}`"
            )
        else:
            message += "; raise the timeout or look at why these nodes are slow"
        return message

    def _report(
        self,
        plan: Plan,
        keys: Callable[[DispatchNode], str],
        futures: dict[str, Future],
        tasks: list[Future],
        first_error: Future | None,
        released: set[int],
        stopped: bool,
    ) -> RunReport:
        """The run's failures. `stopped`: the run cancelled its own unfinished tasks
        (a failure with `throw_error`); any other cancelled task is a failure of its node."""
        report = RunReport()
        errors: dict[DispatchNode, DependencyError] = {}
        # blocks in which a node failed: their values say which, fetched in one round trip
        flawed = [f for f in tasks if f.status == "finished" and f.type in FLAWED]
        blocks = self.client.holder_values(flawed) if flawed else {}
        # every task finished well (the common case): no node failed, none to look at
        clean = not flawed and all(f.status == "finished" for f in tasks)
        for node in () if clean else plan.order:
            key = keys(node)
            future = futures[key]
            if id(future) in released:  # finished well, then dropped (keep="outputs")
                continue
            own: DependencyError | None = None
            if future.status == "cancelled" and not (stopped and self.client.is_cancelled(key)):
                # cancelled by someone else: another client, dask itself, or here by
                # `cancel()` or another run that stopped early
                reason = (
                    "by cancel() or another run of this client that stopped early"
                    if self.client.is_cancelled(key)
                    else cancel_reason(future) or "no reason given"
                )
                cancelled = CancelledError(
                    f"node {node.label!r} was cancelled on the cluster before it finished "
                    f"({reason}); run it again"
                )
                own = DependencyError(cancelled, "", node)
            elif future.status == "error":
                pass
            elif id(future) in blocks:
                entry = entry_of(blocks[id(future)], key)
                if isinstance(entry, Failure):
                    own = DependencyError(entry.error, entry.trace, node)
                elif not isinstance(entry, Upstream):
                    continue
            else:
                continue
            failed_dep = next((d for d in plan.dependencies(node) if d in errors), None)
            if own is not None:
                error = own
            elif failed_dep is not None:
                upstream = errors[failed_dep]
                error = DependencyError(upstream, upstream.trace, node)
            else:
                error = DependencyError(future.exception(), remote_trace(future), node)
            errors[node] = error
            outcome = node.outcome
            if outcome is not None and hasattr(outcome, "error"):
                outcome.error = error
        batch = self.client.batch_outputs(plan.outputs)
        for future in flawed:
            batch.put(future, blocks[id(future)])
        if first_error is not None:
            first = next(
                errors[n] for n in plan.order if futures[keys(n)] is first_error and n in errors
            )
            report.first_failure = first.origin
        for node, error in errors.items():
            report.fail(node, error)
        return report

    def reset(self) -> None:
        """Drop everything this executor computed, on the scheduler and the workers."""
        self.client.close()
        self.client = Client(self._target, **self._client_options)

    def close(self) -> None:
        """Disconnect, and stop the embedded cluster if this executor owns one."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @contextlib.contextmanager
    def as_current(self) -> Iterator[distributed.Client]:
        """Make this executor's dask client dask's current client (for dask's diagnostics).

        `with executor.as_current(), distributed.performance_report("run.html"):`
        reports the runs inside. A `with DaskExecutor(...) as ex:` block does the same.
        """
        with self.client.dask_client.as_current() as current:
            yield current

    def __enter__(self) -> DaskExecutor:
        current = self.as_current()
        current.__enter__()
        self._current: contextlib.AbstractContextManager[Any] | None = current
        return self

    def __exit__(self, *exc: Any) -> None:
        current, self._current = getattr(self, "_current", None), None
        try:
            self.close()
        finally:
            if current is not None:
                with contextlib.suppress(ValueError):  # left from another thread or context
                    current.__exit__(None, None, None)

    def __repr__(self) -> str:
        return f"DaskExecutor({self.scheduler_address!r})"
