"""Outcomes of a run: `Result`, and pydispatch's exception hierarchy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from .traces import format_user_exception

if TYPE_CHECKING:
    from .graph import DispatchNode

T = TypeVar("T")


class DispatcherError(Exception):
    """The root of every error pydispatch raises itself."""


class ExecutorError(DispatcherError):
    """A graph cannot be run as given (for example, it has a cycle)."""


class CancelledError(DispatcherError):
    """The node's computation was cancelled; its result is gone."""


class RunTimeoutError(DispatcherError, TimeoutError):
    """A run did not finish within its `timeout`."""


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

    @property
    def root_cause(self) -> BaseException:
        """The exception that started the chain of failures."""
        err: BaseException = self
        while isinstance(err, DependencyError):
            err = err.err
        return err

    @property
    def failed_node(self) -> DispatchNode | None:
        """The node whose own code raised `root_cause`."""
        err: BaseException = self
        node = self.node
        while isinstance(err, DependencyError):
            node = err.node
            err = err.err
        return node

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


class Result(Generic[T]):
    """One output of a run: the node on success, its `DependencyError` on failure."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: T | None = None, error: DependencyError | None = None):
        self._value = value
        self._error = error

    @property
    def is_error(self) -> bool:
        return self._error is not None

    @property
    def error(self) -> DependencyError | None:
        """The failure, or None on success."""
        return self._error

    def unwrap(self) -> T:
        """The node; raises the `DependencyError` if it failed."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def unwrap_error(self) -> DependencyError:
        """The `DependencyError`; raises `ValueError` if the result is a success."""
        if self._error is None:
            raise ValueError(f"Result holds a success ({self._value!r}), not an error")
        return self._error

    def __repr__(self) -> str:
        if self._error is not None:
            return f"Result(error={self._error})"
        return f"Result({self._value!r})"
