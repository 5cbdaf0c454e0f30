"""Every error pydispatch raises itself, in one place; each one is a `DispatcherError`.

Modelled on httpx's single exceptions module: users catch `DispatcherError` for
anything pydispatch says, or one of the subclasses below for one kind of trouble.
Errors raised by the user's own task functions are never wrapped in a new type:
they arrive as `DependencyError.err`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from .tracebacks import format_user_exception


class DispatchNode(Protocol):
    """What an error needs of a node: its label (errors sit below the graph module)."""

    label: str


__all__ = [
    "CancelledError",
    "CommandError",
    "ConversionError",
    "DependencyError",
    "DispatcherError",
    "ExecutorError",
    "GraphFileError",
    "JuliaRuntimeError",
    "JuliaTaskError",
    "NoWorkerWarning",
    "RunTimeoutError",
    "SchedulerLostError",
    "SchedulerUnreachableError",
    "TLSError",
    "UnavailableFunctionError",
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


# -- the Julia bridge (pydispatch.julia) -------------------------------------------


class JuliaTaskError(DispatcherError):
    """A Julia exception raised by a Julia function, as a plain Python exception.

    ``jltype`` is the Julia exception type (e.g. ``"DomainError"``), ``message``
    is ``sprint(showerror, e)``, ``backtrace`` the Julia backtrace as text, and
    ``payload`` the exception serialized with Julia's ``Serialization`` (or
    ``None``), so a Julia client can rebuild the original exception.
    """

    def __init__(
        self,
        jltype: str,
        message: str,
        backtrace: str = "",
        payload: bytes | None = None,
    ) -> None:
        super().__init__(jltype, message, backtrace, payload)
        self.jltype = jltype
        self.message = message
        self.backtrace = backtrace
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaTaskError, (self.jltype, self.message, self.backtrace, self.payload))

    def __str__(self) -> str:
        # One line: the Julia backtrace is `.backtrace`, shown once by whoever reports
        # the error (`pydispatch run` prints the remote trace itself).
        first = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"Julia {self.jltype}: {first}" if first else f"Julia {self.jltype}"

    def __repr__(self) -> str:
        return f"JuliaTaskError({self.jltype!r}, {self.message!r})"


class JuliaRuntimeError(DispatcherError, RuntimeError):
    """The process's Julia runtime is not usable (failed to start, or shut down)."""


class UnavailableFunctionError(DispatcherError, ValueError):
    """A graph uses a Julia function (or a ``Main`` global) that no worker can resolve.

    Raised before anything is submitted. ``missing`` maps each node label to the
    ``Main`` names its function needs and that no ``@everywhere`` block defines.
    """

    def __init__(self, message: str, missing: dict[str, tuple[str, ...]] | None = None) -> None:
        super().__init__(message)
        self.missing = dict(missing or {})

    def __reduce__(self) -> tuple[Any, ...]:
        return (UnavailableFunctionError, (str(self), self.missing))


class ConversionError(DispatcherError, TypeError):
    """A value cannot cross between Python and Julia under the conversion table."""


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
