"""Channels shared by a test and dask worker processes (Dispatcher.jl's `Channel`s).

The scenario tests pass a queue or a list to task functions; on dask they are a
`distributed.Queue` and a list kept in a `distributed.Variable`. Workers cannot
import this module, so these objects pickle themselves by value (cloudpickle).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import cloudpickle
import distributed

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Rebuild:
    """Pickles as the call `rebuild(*args)` (by value: this module is registered so)."""

    def __init__(self, rebuild: Any, args: tuple[Any, ...]):
        self.rebuild, self.args = rebuild, args

    def __reduce__(self) -> Any:
        return self.rebuild, self.args


def _by_value(rebuild: Any, *args: Any) -> tuple[Any, tuple[bytes]]:
    """A `__reduce__` value that plain pickle stores as `cloudpickle.loads(bytes)`, so
    workers rebuild the object without importing this module."""
    return cloudpickle.loads, (cloudpickle.dumps(_Rebuild(rebuild, args)),)


class ClusterQueue(distributed.Queue):
    """A `distributed.Queue` with the `empty()` of the other executors' queues."""

    def empty(self) -> bool:
        return bool(self.qsize() == 0)

    def __reduce__(self) -> Any:
        return _by_value(_queue, self.name, self.maxsize)


class ClusterList:
    """A list kept in a `distributed.Variable`; the tests use it one task at a time."""

    def __init__(self, client: distributed.Client | None = None, name: str | None = None):
        self.variable = distributed.Variable(name, client=client)
        if name is None:
            self.variable.set([])

    def _items(self) -> list[Any]:
        return list(self.variable.get(timeout=30))

    def append(self, value: Any) -> None:
        self.variable.set([*self._items(), value])

    def pop(self, index: int = -1) -> Any:
        items = self._items()
        value = items.pop(index)
        self.variable.set(items)
        return value

    def __getitem__(self, index: int) -> Any:
        return self._items()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __reduce__(self) -> Any:
        return _by_value(_list, self.variable.name)

    def __dask_tokenize__(self) -> str:
        return str(self.variable.name)


def _queue(name: str, maxsize: int) -> ClusterQueue:
    return ClusterQueue(name=name, maxsize=maxsize)


def _list(name: str) -> ClusterList:
    return ClusterList(name=name)
