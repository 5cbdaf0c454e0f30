"""The one door to dask's internals: every name here is one dask does not document.

pydispatch uses dask's public API wherever one exists. What remains is here, each
with the reason it is needed and a test in `tests/test_compat.py` that fails loudly
when a dask release changes it (then this module is the only place to fix).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import distributed
from distributed.active_memory_manager import ReduceReplicas

__all__ = [
    "LateCancelTolerantClient",
    "ReduceReplicasExcept",
    "cancel_reason",
    "check_transport",
    "task_prefix_durations",
]


class LateCancelTolerantClient(distributed.Client):
    """A `distributed.Client` that ignores the scheduler's late echoes of its own cancels.

    The scheduler confirms a cancel to the client after the fact, sometimes more than
    once for one key (a key cancelled directly and as a dependent of another); a key
    cancelled and submitted again at once would otherwise have its new future
    cancelled by that late confirmation. So for `echo_window` seconds after we cancel
    a key, confirmations of it are ignored. Internal: overrides
    `Client._handle_cancelled_keys` (the handler of the scheduler's "cancelled-keys"
    message), and reads the name-mangled `_Client__loop` to close a half-made client.
    """

    echo_window = 30.0
    """Seconds during which the scheduler's confirmations of our own cancel are ignored."""

    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, *args: Any, **kwargs: Any):
        self._late_cancels: dict[str, float] = {}
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            # close now: otherwise __del__ closes it later, at exit, with a timeout traceback
            if getattr(self, "_Client__loop", None) is not None:
                self.close(timeout=2)
            raise

    def expect_cancel_echo(self, keys: Iterable[str]) -> None:
        """Ignore the scheduler's confirmations of our cancel of `keys` for a while."""
        until = self.clock() + self.echo_window
        for key in keys:
            self._late_cancels[key] = until

    def _handle_cancelled_keys(self, keys, reason=None, msg=None):
        now = self.clock()
        for key in keys:
            until = self._late_cancels.get(key)
            if until is not None:
                if now < until:
                    continue
                del self._late_cancels[key]
            state = self.futures.get(key)
            if state is not None:
                state.cancel(reason=reason, msg=msg)


def cancel_reason(future: distributed.Future) -> str | None:
    """Why dask cancelled `future` (e.g. "scheduler-connection-lost"), without a round trip.

    Internal: `Future._state.exception` holds the `FutureCancelledError` with its
    `reason`; the public `future.exception()` would block on the event loop.
    """
    state = getattr(future, "_state", None)
    return getattr(getattr(state, "exception", None), "reason", None)


class ReduceReplicasExcept(ReduceReplicas):
    """dask's `ReduceReplicas` memory-manager policy, except for keys replicated on purpose.

    Internal: the policy protocol is documented, but what it reads is not
    (`self.manager.scheduler.tasks`, each suggestion's `ts.key`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.protected: set[Any] = set()

    def run(self):
        tasks = self.manager.scheduler.tasks
        self.protected &= tasks.keys()
        suggestions = super().run()
        answer = None
        while True:
            try:
                suggestion = suggestions.send(answer)
            except StopIteration:
                return
            if suggestion.ts.key in self.protected:
                answer = None
                continue
            answer = yield suggestion


def check_transport(scheme: str) -> None:
    """`ValueError` unless dask has a transport for `scheme` (tcp, tls, ws, ucx, ...).

    Internal: `distributed.comm.registry.get_backend` is where dask looks its
    transports up (including those that packages register as entry points).
    """
    distributed.comm.registry.get_backend(scheme)


def task_prefix_durations(dask: distributed.Client, prefixes: Iterable[str]) -> dict[str, float]:
    """dask's mean compute time, in seconds, of the tasks of each of `prefixes` it knows.

    One round trip. Internal: the scheduler's `task_prefixes` (prefix name ->
    `TaskPrefix`) and `TaskPrefix.duration_average` (-1 while unknown) are what the
    scheduler itself uses to estimate durations, and are not documented.
    """
    return dict(dask.run_on_scheduler(prefix_durations, prefixes=list(prefixes)))


def prefix_durations(dask_scheduler: Any, prefixes: list[str]) -> dict[str, float]:
    """On the scheduler: the known mean durations of `prefixes` (see `task_prefix_durations`)."""
    known: dict[str, float] = {}
    for name in prefixes:
        prefix = dask_scheduler.task_prefixes.get(name)
        average = getattr(prefix, "duration_average", -1)
        if isinstance(average, (int, float)) and average >= 0:
            known[name] = float(average)
    return known
