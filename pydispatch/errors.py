"""Every error pydispatch raises itself, in one place; each one is a `DispatcherError`.

Modelled on httpx's single exceptions module: users catch `DispatcherError` for
anything pydispatch says, or one of the subclasses below for one kind of trouble.
Errors raised by the user's own task functions are never wrapped in a new type:
they arrive as `DependencyError.err`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from .tracebacks import format_user_exception


class DispatchNode(Protocol):
    """What an error needs of a node: its label (errors sit below the graph module)."""

    label: str


__all__ = [
    "CancelledError",
    "CommandError",
    "DependencyError",
    "DispatcherError",
    "ExecutorError",
    "GraphFileError",
    "NoWorkerWarning",
    "RunTimeoutError",
    "SchedulerLostError",
    "SchedulerUnreachableError",
    "TLSError",
    "UnpicklableResultError",
    "VisualizationError",
]


class DispatcherError(Exception):
    """The root of every error pydispatch raises itself."""


class ExecutorError(DispatcherError):
    """A graph cannot be run as given (for example, it has a cycle)."""


class CancelledError(DispatcherError):
    """The node's computation was cancelled; its result is gone."""


class RunTimeoutError(DispatcherError, TimeoutError):
    """A run did not finish within its `timeout`."""


class SchedulerUnreachableError(DispatcherError, ConnectionError):
    """No dask scheduler answered at the given address."""


class SchedulerLostError(DispatcherError, ConnectionError):
    """The connection to the scheduler was lost."""


class TLSError(SchedulerUnreachableError):
    """A TLS connection could not be set up: no certificates, or one side refused the other's."""


class UnpicklableResultError(DispatcherError, TypeError):
    """A task's value cannot be pickled, so it could never leave its worker."""


class VisualizationError(DispatcherError):
    """The graph cannot be drawn: graphviz is missing or the output path is unusable."""


class GraphFileError(DispatcherError):
    """FILE cannot be used: missing, not Python, failing on load, or defining no graph."""


class CommandError(DispatcherError):
    """A one-line error that ends a `pydispatch` command with exit code `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class NoWorkerWarning(UserWarning):
    """A run is waiting because no worker is connected to the scheduler."""


def _describe(node: DispatchNode | None) -> str:
    return "an unknown node" if node is None else f"node {node.label!r}"


class DependencyError(DispatcherError):
    """A node failed, or could not run because one of its dependencies failed.

    `err` is the original exception, or for a node that did not run, the
    `DependencyError` of the dependency that failed first. `trace` is the
    traceback text of where `err` was raised (remote, for distributed runs).
    """

    def __init__(self, err: BaseException, trace: str = "", node: DispatchNode | None = None):
        super().__init__(err, trace, node)
        self.err = err
        self.trace = trace
        self.node = node
        self.__cause__ = err

    @classmethod
    def from_exception(cls, err: BaseException, node: DispatchNode | None) -> DependencyError:
        """Wrap `err` as raised locally, keeping its traceback text, without pydispatch's frames."""
        if isinstance(err, DependencyError):
            return cls(err, err.trace, node)
        return cls(err, format_user_exception(err), node)

    def chain(self) -> Iterator[DependencyError]:
        """This error, then the upstream errors it wraps, down to the node that raised."""
        err: BaseException = self
        while isinstance(err, DependencyError):
            yield err
            err = err.err

    @property
    def origin(self) -> DependencyError:
        """The error of the node whose own code failed: the end of `chain()`."""
        *_, last = self.chain()
        return last

    @property
    def root_cause(self) -> BaseException:
        """The exception that started the chain of failures."""
        return self.origin.err

    @property
    def failed_node(self) -> DispatchNode | None:
        """The node whose own code raised `root_cause`."""
        return self.origin.node

    def __str__(self) -> str:
        root = self.root_cause
        what = f"{type(root).__name__}: {root}"
        if self.failed_node is self.node:
            return f"{_describe(self.node)} failed: {what}"
        return (
            f"{_describe(self.node)} did not run because its dependency "
            f"{_describe(self.failed_node)} failed: {what}"
        )

    def __reduce__(self):
        return (type(self), (self.err, self.trace, self.node))
