"""The ledger of a client's submissions: node objects, their keys, futures, dependents.

Pure bookkeeping with no dask in it (a future is any object), so it is tested
without a cluster. Identical node objects share a key (content keys): the ledger
remembers every node object by identity, each with its key, and holds one future
per key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from ..graph import DispatchNode

F = TypeVar("F")


class Ledger(Generic[F]):
    """What a client submitted: key of each node object, future of each key, and more.

    `dependents` lets `cancel` reach everything downstream of a node; `cancelled`
    keys answer `CancelledError` at once until they are submitted again.
    """

    def __init__(self) -> None:
        self._futures: dict[str, F] = {}
        self._key_of: dict[int, tuple[DispatchNode, str]] = {}
        self._dependents: dict[str, set[str]] = {}
        self._cancelled: set[str] = set()

    @property
    def keys(self) -> set[str]:
        """Keys with a live future (submitted, not cancelled)."""
        return set(self._futures)

    def futures(self) -> list[F]:
        """Every live future."""
        return list(self._futures.values())

    def future(self, key: str) -> F | None:
        """The live future of `key`, if there is one."""
        return self._futures.get(key)

    def hold(self, key: str, future: F) -> None:
        """Keep `future` as the live future of `key`."""
        self._futures[key] = future

    def drop(self, key: str) -> None:
        """Forget the future of `key` (dask dropped it: it will be submitted anew)."""
        self._futures.pop(key, None)

    def record(self, node: DispatchNode, key: str, dependency_keys: Iterable[str]) -> None:
        """`node` was submitted under `key`, depending on `dependency_keys`."""
        self._key_of[id(node)] = (node, key)
        self._cancelled.discard(key)
        for dep in dependency_keys:
            self._dependents.setdefault(dep, set()).add(key)

    def key_of(self, node: DispatchNode) -> str | None:
        """The key `node` (this very object) was submitted under, if it was."""
        known = self._key_of.get(id(node))
        return known[1] if known is not None and known[0] is node else None

    def downstream(self, keys: Iterable[str]) -> set[str]:
        """`keys` and every key that depends on them, directly or not."""
        found: set[str] = set()
        stack = list(keys)
        while stack:
            key = stack.pop()
            if key not in found:
                found.add(key)
                stack.extend(self._dependents.get(key, ()))
        return found

    def cancel(self, keys: Iterable[str]) -> list[F]:
        """Mark `keys` cancelled; the live futures they had (to cancel on the cluster)."""
        keys = set(keys)
        self._cancelled |= keys
        return [self._futures.pop(k) for k in keys if k in self._futures]

    def is_cancelled(self, key: str) -> bool:
        """Whether `key` was cancelled and not submitted again since."""
        return key in self._cancelled

    def clear(self) -> None:
        """Forget everything (cancelled keys stay cancelled)."""
        self._futures.clear()
        self._key_of.clear()
        self._dependents.clear()
