"""Content keys: identical nodes get identical keys, so they compute once.

A key is `<label>-<hash>`. The hash covers the function, the arguments (a
dependency by its own key) and the keyword arguments. The label prefix keeps
dask's task groups natural (dask groups tasks by key prefix). An `Op` with an
explicit `key` uses it; one with `pure=False` gets a fresh random key each time
it is submitted, so it (and what depends on it) runs again.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
import types
import uuid
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from dask.base import tokenize

from ..errors import ExecutorError
from ..graph import DataNode, DispatchNode, Op

_PLAIN_TYPES = frozenset({int, float, complex, str, bytes, bool, type(None)})
_FUNC_TOKENS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_BUILTIN_TOKENS: dict[Any, str] = {}
_UNSAFE = re.compile(r"[^\w.<>\[\]' ]+")


def _is_plain(value: Any) -> bool:
    """Whether `value` is built only of plain data, whose pickle is its content."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return True
    if kind is tuple or kind is list:
        return all(type(v) in _PLAIN_TYPES or _is_plain(v) for v in value)
    if kind is dict:
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def _function_token(func: Any) -> str:
    """The token of a function or class, cached: tokenizing a function is slow."""
    if isinstance(func, (types.FunctionType, type)):
        cache: Any = _FUNC_TOKENS
    elif isinstance(func, types.BuiltinFunctionType):
        cache = _BUILTIN_TOKENS
    else:
        return tokenize(func)
    token = cache.get(func)
    if token is None:
        token = cache[func] = tokenize(func)
    return token


def value_token(value: Any) -> str:
    """A deterministic hash of a value (fast for plain Python data)."""
    if _is_plain(value):
        return hashlib.sha1(pickle.dumps(value, protocol=5)).hexdigest()
    return tokenize(value)


@functools.lru_cache(maxsize=4096)
def label_prefix(label: str) -> str:
    """The key prefix of nodes labelled `label` (dask groups tasks by key prefix)."""
    return _UNSAFE.sub("_", label).strip() or "node"


class KeyMaker:
    """Keys for the nodes of one run; `given` maps cut nodes to their values."""

    def __init__(self, given: Mapping[DispatchNode, Any] | None = None):
        self._given = given or {}
        self._keys: dict[int, str] = {}
        self._held: list[DispatchNode] = []
        self._funcs: dict[int, tuple[Any, str]] = {}

    def __call__(self, node: DispatchNode) -> str:
        key = self._keys.get(id(node))
        if key is None:
            known = self._keys
            for dep in node.dependencies():
                if id(dep) not in known:
                    self._make_dependencies_first(node)
                    break
            key = self._make(node)
            self._keys[id(node)] = key
            self._held.append(node)
        return key

    def ordered(self, nodes: Iterable[DispatchNode]) -> list[str]:
        """The keys of `nodes`, given dependencies first (as `Plan.order` lists them).

        The same keys as calling this object on each node, without first checking
        that each node's dependencies have keys (in this order they do).
        """
        known = self._keys
        make = self._make
        held = self._held
        found: list[str] = []
        for node in nodes:
            key = known.get(id(node))
            if key is None:
                key = known[id(node)] = make(node)  # a dependency not yet keyed: keyed on demand
                held.append(node)
            found.append(key)
        return found

    def _make_dependencies_first(self, node: DispatchNode) -> None:
        """Key a deep chain without deep recursion: dependencies before dependents."""
        stack = [(node, False)]
        pending: set[int] = set()  # expanded, not yet keyed: reaching one again is a cycle
        while stack:
            current, expanded = stack.pop()
            if id(current) in self._keys or current in self._given:
                continue
            if expanded:
                pending.discard(id(current))
                if current is not node:
                    self(current)
                continue
            if id(current) in pending:
                raise ExecutorError(
                    f"cannot key node {current.label!r}: it depends on itself (the graph "
                    "has a cycle); only graphs without circular dependencies can run"
                )
            pending.add(id(current))
            stack.append((current, True))
            stack.extend((dep, False) for dep in current.dependencies())

    def _make(self, node: DispatchNode) -> str:
        if node in self._given:
            return f"data-{value_token(self._given[node])}"
        if isinstance(node, Op):
            if node.key is not None:
                return node.key
            if not node.pure:
                return f"{label_prefix(node.label)}-{uuid.uuid4().hex}"
        if isinstance(node, DataNode):
            return f"data-{value_token(node.value)}"
        func, args, kwargs = node.call()
        # Dependencies and plain arguments are hashed in separate slots, so no plain
        # value, whatever it holds, can produce the key of a dependency.
        plain = True  # every argument a node or of a plain type: `parts` is plain data
        values: list[tuple[int, Any]] = []
        deps: list[tuple[int, str]] = []
        for i, arg in enumerate(args):
            if isinstance(arg, DispatchNode):
                deps.append((i, self(arg)))
            else:
                values.append((i, arg))
                if plain and type(arg) not in _PLAIN_TYPES:
                    plain = False
        named: list[tuple[str, Any]] = []
        named_deps: list[tuple[str, str]] = []
        if kwargs:
            for name, arg in kwargs.items():
                if isinstance(arg, DispatchNode):
                    named_deps.append((name, self(arg)))
                else:
                    named.append((name, arg))
                    if plain and (type(name) is not str or type(arg) not in _PLAIN_TYPES):
                        plain = False
            named.sort()
            named_deps.sort()
        parts = (type(node).__name__, len(args), tuple(values), tuple(deps), named, named_deps)
        # the same digest `value_token` gives plain data, without its walk over `parts`
        digest = (
            hashlib.sha1(pickle.dumps(parts, protocol=5)).hexdigest()
            if plain
            else value_token(parts)
        )
        return f"{label_prefix(node.label)}-{self._function_token(func)}{digest[:16]}"

    def _function_token(self, func: Any) -> str:
        """The first 16 characters of `func`'s token, cached for the run by `id`."""
        found = self._funcs.get(id(func))
        if found is None or found[0] is not func:
            found = self._funcs[id(func)] = (func, _function_token(func)[:16])
        return found[1]


def get_key(node: DispatchNode) -> str:
    """The node's key: equal for identical nodes (same function, arguments, dependencies)."""
    if not isinstance(node, DispatchNode):
        raise TypeError(f"get_key takes a node, got {node!r}")
    return KeyMaker()(node)
