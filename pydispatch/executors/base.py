"""The `Executor` contract: run a graph, get one `Result` per output."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DependencyError
from ..graph import DispatchGraph, DispatchNode, html_of
from ..plan import Plan
from ..progress import Progress, make_progress
from ..results import Result, RunResults
from ..retry import Backoff, RetryPolicy, RetryPredicate

logger = logging.getLogger("pydispatch")


@dataclass
class RunReport:
    """What `_execute` tells `run`: every failed node, and the first to fail."""

    failures: dict[DispatchNode, DependencyError] = field(default_factory=dict)
    first_failure: DependencyError | None = None

    def fail(self, node: DispatchNode, error: DependencyError) -> None:
        self.failures[node] = error
        if self.first_failure is None:
            self.first_failure = error


class Executor(ABC):
    """Runs dispatch graphs. Subclasses implement `_execute` for a plan."""

    default_retry_on: tuple[RetryPredicate, ...] = ()
    """Predicates an executor always checks, before the user's `retry_on`."""

    def __init__(
        self,
        retries: int = 0,
        retry_on: Iterable[RetryPredicate] = (),
        *,
        backoff: Backoff | None = None,
    ):
        policy = RetryPolicy.checked(retries, retry_on, backoff)
        self._policy = dataclasses.replace(policy, retry_on=self.default_retry_on + policy.retry_on)
        self.last_run: RunResults | None = None
        """The results of the last run (for the summary Jupyter shows of the executor)."""

    @property
    def retries(self) -> int:
        """How many times a failed node may be retried."""
        return self._policy.retries

    @property
    def retry_on(self) -> tuple[RetryPredicate, ...]:
        """Predicates on the original exception; a node is retried if one returns true."""
        return self._policy.retry_on

    def run(
        self,
        graph_or_nodes: DispatchGraph | DispatchNode | Iterable[DispatchNode],
        inputs: Iterable[DispatchNode] = (),
        *,
        input_map: Mapping[DispatchNode, Any] | None = None,
        throw_error: bool = True,
        timeout: float | None = None,
        progress: bool | Progress = False,
    ) -> RunResults:
        """Run the graph; one `Result` per output (per leaf, for a graph), in order.

        `inputs` are cut from the graph and keep the values of their last run;
        `input_map` gives values for nodes, which then do not run. With
        `throw_error`, the first failure is raised once the run has stopped.
        `timeout` (seconds) bounds the whole run.
        """
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
        plan = Plan.build(graph_or_nodes, inputs, input_map)
        logger.debug("%r: executing %d graph nodes", self, len(plan.order))
        reporter = make_progress(progress)
        reporter.start(plan)
        try:
            report = self._execute(
                plan, throw_error=throw_error, timeout=timeout, progress=reporter
            )
        finally:
            reporter.finish()
        logger.debug(
            "%r: all %d nodes executed, %d failed", self, len(plan.order), len(report.failures)
        )
        results = RunResults(
            (
                Result(error=report.failures[node]) if node in report.failures else Result(node)
                for node in plan.outputs
            ),
            plan.order,
            self,
        )
        self.last_run = results
        if throw_error and report.first_failure is not None:
            raise report.first_failure
        return results

    @abstractmethod
    def _execute(
        self, plan: Plan, *, throw_error: bool, timeout: float | None, progress: Progress
    ) -> RunReport:
        """Compute the plan's nodes, leave an outcome on each, report the failures."""

    def dispatch(self, node: DispatchNode) -> concurrent.futures.Future[Any]:
        """Run `node` (and what it depends on) in the background; a future of its value."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()

        def target() -> None:
            try:
                self.run([node])
                future.set_result(node.result())
            except BaseException as err:
                future.set_exception(err)

        threading.Thread(
            target=target, name=f"pydispatch-dispatch-{node.label}", daemon=True
        ).start()
        return future

    def _repr_html_(self) -> str | None:
        return html_of(self)

    def close(self) -> None:  # noqa: B027 - most executors hold nothing
        """Release what the executor holds (pools, connections)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
