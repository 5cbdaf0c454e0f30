"""What a node's run on dask left: its outcome (`DaskOutcome`), and a run's outputs,
fetched together in one round trip (`OutputBatch`).

An outcome follows the client's live future for its node key, so node objects that
share a key (identical nodes) see a resubmission, a cancel or a reset alike; a fused
node's value is picked out of its block's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import distributed
from distributed import Future

from ..errors import CancelledError, DependencyError, DispatcherError
from ..graph import DispatchNode
from ..tracebacks import format_user_frames
from .blocks import MISSING, BlockValues, Failure, Upstream, UpstreamFailed, entry_of
from .connection import check_seconds


class OutcomeSource(Protocol):
    """What an outcome asks of the client that submitted its node."""

    status: str
    scheduler_address: str
    orphans: set[str]

    @property
    def dask_client(self) -> distributed.Client: ...

    def future_of(self, key: str) -> Future | None: ...

    def check_not_cancelled(self, key: str, node: DispatchNode) -> None: ...

    def result(self, node: DispatchNode, timeout: float | None = None) -> Any: ...

    def upstream_error(self, node: DispatchNode, failed_key: str) -> DependencyError: ...

    def learn(self, holder: Any) -> None: ...


def remote_trace(future: Future) -> str:
    """The remote traceback text of a failed future, without pydispatch's own frames."""
    try:
        tb = future.traceback()
    except Exception:
        return ""
    return format_user_frames(tb, remote=True)


class DaskOutcome:
    """A node's outcome on the cluster: the dask future holding it, and its error once known.

    The future is the node's own task, or the block it was fused into (then the
    node's value is one entry of the block's value). Node objects that share a key
    (identical nodes) each have an outcome; all of them follow the client's current
    future for that key, so a resubmission, a cancel or a reset of one acts on every
    one of them alike.
    """

    __slots__ = ("_error", "_future", "batch", "client", "key", "node", "released")

    def __init__(self, client: OutcomeSource, node: DispatchNode, key: str, future: Future):
        self.client = client
        self.node = node
        self.key = key
        self._future: Future | None = future
        self._error: DependencyError | None = None
        self.batch: OutputBatch | None = None
        """The outputs of the run this node was an output of: fetched together."""
        self.released = False
        """Whether the run dropped this (intermediate) result: `keep="outputs"`."""

    @property
    def future(self) -> Future:
        """The client's live future holding this key (a newer submission replaces an older)."""
        live = self.client.future_of(self.key)
        if live is not None and live is not self._future:
            self._future, self._error, self.released = live, None, False
        if self._future is None:
            raise DispatcherError(self._released_message())
        return self._future

    @property
    def fused(self) -> bool:
        """Whether the node was computed inside a block with other nodes."""
        return self.future.key != self.key

    @property
    def error(self) -> DependencyError | None:
        """The node's error, once a run has reported it for the current future."""
        if not self.released:
            self.future  # noqa: B018 - drops an error that belonged to a replaced future
        return self._error

    @error.setter
    def error(self, error: DependencyError | None) -> None:
        if not self.released:
            self.future  # noqa: B018
        self._error = error

    def release(self) -> None:
        """Forget the future (the run's `keep="outputs"` dropped this intermediate result)."""
        self._future, self.released, self.batch = None, True, None

    def _released_message(self) -> str:
        return (
            f"the result of node {self.node.label!r} was not kept: it was an intermediate "
            "node of a run with keep='outputs'; run it as an output, or with keep='all'"
        )

    def result(self, timeout: float | None = None) -> Any:
        if timeout is not None:
            check_seconds("timeout", timeout)
        if self.client.status != "running":
            raise DispatcherError(
                f"the result of node {self.node.label!r} is gone: its Client of "
                f"{self.client.scheduler_address} was shut down (executor closed or reset); "
                "run the node again"
            )
        self.client.check_not_cancelled(self.key, self.node)
        if self.key in self.client.orphans:  # a block-mate was cancelled: compute it again
            return self.client.result(self.node, timeout)
        if self.released and self.client.future_of(self.key) is None:
            if self._error is not None:
                raise self._error
            raise DispatcherError(self._released_message())
        future = self.future
        if self._error is not None:
            raise self._error
        try:
            if self.batch is not None and self.batch.holds(future):
                holder = self.batch.value(future)
            else:
                holder = future.result(timeout=timeout)
        except (distributed.client.FutureCancelledError, distributed.CancelledError) as err:
            raise CancelledError(
                f"node {self.node.label!r} was cancelled on the cluster ({err}); run it again"
            ) from None
        except TimeoutError:
            raise
        except UpstreamFailed as err:
            self._error = self.client.upstream_error(self.node, err.key)
            raise self._error from None
        except Exception as err:
            self._error = DependencyError(err, remote_trace(future), self.node)
            raise self._error from None
        return self.value_from(holder)

    def value_from(self, holder: Any) -> Any:
        """This node's value out of its holder's value (raises its `DependencyError`)."""
        if not isinstance(holder, (BlockValues, Failure)):
            return holder
        entry = entry_of(holder, self.key)
        if entry is MISSING:
            raise DispatcherError(self._released_message())
        if isinstance(entry, Failure):
            self._error = DependencyError(entry.error, entry.trace, self.node)
            raise self._error
        if isinstance(entry, Upstream):
            self._error = self.client.upstream_error(self.node, entry.key)
            raise self._error
        return entry

    def done(self) -> bool:
        if self.released and self.client.future_of(self.key) is None:
            return True
        return self.future.done()


class OutputBatch:
    """The futures holding a run's outputs: the first value asked for fetches them all.

    Reading every output of a run then costs one round trip, not one per output.
    """

    def __init__(self, client: OutcomeSource, futures: Iterable[Future]):
        self.client = client
        self.futures = {id(f): f for f in futures}
        self._values: dict[int, Any] | None = None

    def holds(self, future: Future) -> bool:
        """Whether `future` is one of the batch's (and finished: its value can be fetched)."""
        return self.futures.get(id(future)) is future and future.status == "finished"

    def value(self, future: Future) -> Any:
        """The value of `future`, fetching every finished future of the batch at once."""
        if self._values is None:
            ready = [f for f in self.futures.values() if f.status == "finished"]
            try:
                values = self.client.dask_client.gather(ready)
            except Exception:
                values = None
            for value in values or ():
                self.client.learn(value)
            self._values = {} if values is None else dict(zip(map(id, ready), values, strict=True))
        if id(future) in self._values:
            return self._values[id(future)]
        return future.result()

    def put(self, future: Future, value: Any) -> None:
        """Remember `value` as fetched for `future`."""
        if self._values is None:
            self._values = {}
        self._values[id(future)] = value
