"""A run's answer for one output: `Result`, the node on success or its error."""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import DependencyError

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
