"""A run's answer for one output: `Result`, the node on success or its error."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import DependencyError
from .graph import html_of

if TYPE_CHECKING:
    from .graph import DispatchNode

T = TypeVar("T")


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


class RunResults(list[Result["DispatchNode"]]):
    """What `executor.run` returns: one `Result` per output, in order (it is a list).

    It also holds `nodes`, every node the run planned, and the `executor`, for
    a short summary in Jupyter (nodes by state, the dask dashboard link).
    """

    def __init__(
        self,
        results: Iterable[Result[DispatchNode]] = (),
        nodes: Iterable[DispatchNode] = (),
        executor: Any = None,
    ):
        super().__init__(results)
        self.nodes: list[DispatchNode] = list(nodes)
        self._executor = None if executor is None else weakref.ref(executor)

    @property
    def executor(self) -> Any:
        """The executor that ran them (None once it is gone)."""
        return None if self._executor is None else self._executor()

    def _repr_html_(self) -> str | None:
        return html_of(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))  # pickled, it is the plain list of results
