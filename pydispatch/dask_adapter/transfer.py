"""Task values must be able to leave their worker; a value that cannot is an error at once.

dask pickles a value only when it must move (to another worker or to the
client). A value that cannot be pickled would leave a dependent on another
worker waiting forever, so each task's value is test-pickled where it is made.
"""

from __future__ import annotations

import pickle
import reprlib
from collections.abc import Callable
from typing import Any

import cloudpickle
import distributed
from dask.sizeof import sizeof

from ..errors import UnpicklableResultError
from .shipping import Shipper

_PLAIN = (int, float, complex, str, bytes, bool, type(None))


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False  # do not copy large buffers: checking needs no bytes


class _Sink:
    """A file that forgets what is written: pickling into it holds no bytes."""

    __slots__ = ()

    def write(self, data: Any) -> int:
        return len(data)


LARGE = 1 << 20
"""Values dask sizes at this many bytes or more are checked once per function and type."""

_CHECKED: set[tuple[str, type]] = set()
"""(function, value type) pairs whose large values were checked in this process."""


def _pickles(value: Any) -> None:
    """Raise if neither pickle nor cloudpickle can pickle `value` (streamed, never held)."""
    try:
        pickle.Pickler(_Sink(), protocol=5, buffer_callback=_out_of_band).dump(value)
    except Exception:
        cloudpickle.Pickler(_Sink(), protocol=5, buffer_callback=_out_of_band).dump(value)


def check_transferable(value: Any, name: str, task: str | None = None) -> Any:
    """`value`, after checking dask could pickle it (as it would to send it elsewhere).

    Without this, a dependent on another worker waits forever for a value its
    worker cannot send. The check pickles into a sink (no bytes are kept, large
    buffers are skipped); a large value (by dask's `sizeof`) is checked for the
    first value of its type that `name` returns in this worker process only, so
    big values do not pay a second pickling each.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "hasobject", True) is False:
        return value  # numpy-style arrays of plain numbers: dask sends their buffers
    seen = (name, kind)
    if seen in _CHECKED:
        return value
    try:
        _pickles(value)
    except Exception as err:
        key = task or getattr(distributed.worker.thread_state, "key", None)
        where = f" as task {key!r}" if key is not None else ""
        raise UnpicklableResultError(
            f"the value {name}() returned{where}, {reprlib.repr(value)} "
            f"({kind.__module__}.{kind.__qualname__}), could not be pickled "
            f"({type(err).__name__}: {err}), so it cannot be sent to another worker or to "
            "the client; return picklable data (numbers, strings, lists, dicts, numpy "
            "arrays, ...) instead"
        ) from None
    if sizeof(value) >= LARGE:
        _CHECKED.add(seen)
    return value


def function_name(func: Callable[..., Any]) -> str:
    """The name of a task function, for messages."""
    name = getattr(func, "__name__", None) or getattr(func, "name", None)
    return str(name) if name else repr(func)


class ResultChecked:
    """A task function whose value is checked to be transferable (see `check_transferable`)."""

    __slots__ = ("func", "name")

    def __init__(self, func: Callable[..., Any]):
        self.func = func
        self.name = function_name(func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return check_transferable(self.func(*args, **kwargs), self.name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResultChecked, (self.func,))

    def __dask_tokenize__(self) -> Any:
        """dask's token: the wrapped function's identity (wrappers are cached per function)."""
        return ("pydispatch.ResultChecked", self.name, id(self.func))


class CheckingShipper(Shipper):
    """Ships task functions as `shipper` does, each wrapped in `ResultChecked`."""

    def __init__(self, shipper: Shipper):
        super().__init__(shipper.mode)
        self._inner = shipper
        self._wrapped: dict[int, tuple[Callable[..., Any], ResultChecked]] = {}

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        shipped = self._inner(func)
        hit = self._wrapped.get(id(shipped))
        if hit is None or hit[0] is not shipped:
            hit = self._wrapped[id(shipped)] = (shipped, ResultChecked(shipped))
        return hit[1]
