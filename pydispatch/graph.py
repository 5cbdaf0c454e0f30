"""Graph nodes and `DispatchGraph`: what to compute, independent of how.

A node is a deferred computation. `Op` calls a function, `DataNode` holds a
constant, `IndexNode` takes one element of another node's value and
`CollectNode` gathers the values of several nodes into a list. Nodes compare
and hash by identity. Executors record each node's outcome on the node, so
`node.result()` works after a run.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from .annotations import ANNOTATIONS, check_annotations, current_annotations
from .errors import DispatcherError

P = ParamSpec("P")
R = TypeVar("R")


Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""What a node computes: `(func, args, kwargs)`, nodes among the args standing for values."""


class Outcome(Protocol):
    """What an executor leaves on a node: something that yields its value."""

    def result(self, timeout: float | None = None) -> Any: ...

    def done(self) -> bool: ...


class _NotRun:
    def __init__(self, node: DispatchNode):
        self._label = node.label

    def result(self, timeout: float | None = None) -> Any:
        raise DispatcherError(
            f"node {self._label!r} has not been run: run it first, "
            "e.g. executor.run([node]), then call node.result()"
        )

    def done(self) -> bool:
        return False


class DispatchNode:
    """A node of a dispatch graph. Subclasses say what it computes."""

    label: str
    outcome: Outcome | None = None
    """What the last run left on this node (set by executors; read through `result`)."""
    resources: dict[str, float] | None = None
    """dask worker resources this node needs, e.g. `{"GPU": 1}` (see `annotate`)."""
    priority: int | None = None
    """dask priority: higher runs first among queued work."""
    workers: list[str] | None = None
    """Worker addresses this node must run on."""
    retries: int | None = None
    """How many times dask reruns this node if it fails."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        node = super().__new__(cls)
        for name, value in current_annotations().items():  # from `with annotate(...)`
            setattr(node, name, value)
        return node

    def annotations(self) -> dict[str, Any]:
        """The dask annotations set on this node (resources, priority, workers, retries)."""
        return check_annotations({name: getattr(self, name) for name in ANNOTATIONS})

    def dependencies(self) -> tuple[DispatchNode, ...]:
        """The nodes whose values this node needs, in argument order."""
        return ()

    def call(self) -> Call:
        """`(func, args, kwargs)`; nodes among the top-level args stand for their values."""
        raise NotImplementedError

    def result(self, timeout: float | None = None) -> Any:
        """The node's value after a run; raises its `DependencyError` if it failed."""
        return (self.outcome or _NotRun(self)).result(timeout)

    def done(self) -> bool:
        """Whether the last run of this node has finished (successfully or not)."""
        return self.outcome is not None and self.outcome.done()

    def __getitem__(self, index: Any) -> IndexNode:
        return IndexNode(self, index)

    def __iter__(self) -> Iterator[IndexNode]:
        raise TypeError(
            f"{type(self).__name__} {self.label!r} cannot be unpacked: its length is "
            "unknown until it runs. Index it instead: first, second = node[0], node[1]"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r})"


def _callable_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", None) or type(func).__name__
    return str(name)


class Op(DispatchNode):
    """A deferred call `func(*args, **kwargs)`.

    Nodes among the top-level `args` and `kwargs` values are dependencies; the
    call receives their values. `label` defaults to the function's name.
    `pure=False` (or an explicit `key`) opts out of content addressing.
    """

    def __init__(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any):
        # `func` is positional-only so that the call may take a keyword named `func`.
        if not callable(func):
            raise TypeError(
                f"Op needs a callable as its first argument, got {func!r} "
                f"({type(func).__name__}); pass a function: Op(func, *args)"
            )
        self.func = func
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs
        self.label: str = _callable_name(func)
        self.pure: bool = True
        self.key: str | None = None

    def dependencies(self) -> tuple[DispatchNode, ...]:
        deps = tuple([a for a in self.args if isinstance(a, DispatchNode)])
        if self.kwargs:
            deps += tuple([v for v in self.kwargs.values() if isinstance(v, DispatchNode)])
        return deps

    def call(self) -> Call:
        return self.func, self.args, self.kwargs

    def set_label(self, label: str) -> str:
        """Set the label; returns it."""
        self.label = label
        return label


class DataNode(DispatchNode):
    """A constant: its value is `value`."""

    def __init__(self, value: Any):
        self.value = value
        self.label = "data"

    def call(self) -> Call:
        return _identity, (self.value,), {}

    def __repr__(self) -> str:
        return f"DataNode({self.value!r})"


def _identity(value: Any) -> Any:
    return value


class IndexNode(DispatchNode):
    """Element `index` of `node`'s value (`node[index]`)."""

    def __init__(self, node: DispatchNode, index: Any):
        if not isinstance(node, DispatchNode):
            raise TypeError(f"IndexNode needs a node to index, got {node!r}")
        self.node = node
        self.index = index
        self.label = f"{node.label}[{index!r}]"

    def dependencies(self) -> tuple[DispatchNode, ...]:
        return (self.node,)

    def call(self) -> Call:
        return operator.getitem, (self.node, self.index), {}


def collect(*values: Any) -> list[Any]:
    """The task function of a `CollectNode`."""
    return list(values)


class CollectNode(DispatchNode):
    """The list of the values of `nodes`, in order."""

    def __init__(self, nodes: Iterable[DispatchNode], label: str | None = None):
        self.nodes = list(nodes)
        for node in self.nodes:
            if not isinstance(node, DispatchNode):
                raise TypeError(
                    f"CollectNode takes nodes only, got {node!r}; wrap constants in DataNode"
                )
        self.label = label if label is not None else _default_collect_label(self.nodes)

    def dependencies(self) -> tuple[DispatchNode, ...]:
        return tuple(self.nodes)

    def call(self) -> Call:
        return collect, tuple(self.nodes), {}

    def set_label(self, label: str) -> str:
        """Set the label; returns it."""
        self.label = label
        return label


def _default_collect_label(nodes: Sequence[DispatchNode]) -> str:
    kinds = {type(n) for n in nodes}
    name = kinds.pop().__name__ if len(kinds) == 1 else "DispatchNode"
    return f"{len(nodes)} {name}{'' if len(nodes) == 1 else 's'}"


class OpFunction(Generic[P, R]):
    """A function whose calls build `Op` nodes instead of running (see `op`)."""

    def __init__(
        self,
        func: Callable[P, R],
        label: str | None,
        pure: bool,
        annotations: dict[str, Any] | None = None,
    ):
        if not callable(func):
            raise TypeError(f"@op decorates functions, got {func!r} ({type(func).__name__})")
        functools.update_wrapper(self, func)
        self.func = func
        self.label = label
        self.pure = pure
        self.annotations = check_annotations(annotations or {})

    def __call__(self, *args: Any, **kwargs: Any) -> Op:
        node = Op(self.func, *args, **kwargs)
        if self.label is not None:
            node.label = self.label
        node.pure = self.pure
        for name, value in self.annotations.items():
            setattr(node, name, value)
        return node


@overload
def op(func: Callable[P, R], /) -> OpFunction[P, R]: ...
@overload
def op(
    *,
    label: str | None = None,
    pure: bool = True,
    resources: dict[str, float] | None = None,
    priority: int | None = None,
    workers: str | Sequence[str] | None = None,
    retries: int | None = None,
) -> Callable[[Callable[P, R]], OpFunction[P, R]]: ...
def op(
    func: Callable[P, R] | None = None,
    /,
    *,
    label: str | None = None,
    pure: bool = True,
    resources: dict[str, float] | None = None,
    priority: int | None = None,
    workers: str | Sequence[str] | None = None,
    retries: int | None = None,
) -> OpFunction[P, R] | Callable[[Callable[P, R]], OpFunction[P, R]]:
    """Decorator: calling the decorated function returns an `Op` instead of running it.

    `@op` or `@op(label="load", pure=False, resources={"GPU": 1}, priority=5)`: the
    keywords set the attributes of every `Op` it makes (see `pydispatch.annotate`).
    """
    annotations = {
        "resources": resources,
        "priority": priority,
        "workers": workers,
        "retries": retries,
    }
    if func is None:
        return lambda f: OpFunction(f, label, pure, annotations)
    return OpFunction(func, label, pure, annotations)


class DispatchGraph:
    """The nodes reachable from some outputs, and the edges dependency → dependent.

    Nodes are numbered from 0 in a deterministic order: the outputs first, then
    dependencies as a last-in-first-out walk finds them. The walk does not go
    past `inputs`.
    """

    def __init__(
        self,
        outputs: DispatchNode | Iterable[DispatchNode] = (),
        inputs: Iterable[DispatchNode] = (),
    ):
        self._nodes: list[DispatchNode] = []
        self._ids: dict[int, int] = {}
        self._children: list[set[int]] = []
        self._parents: list[set[int]] = []
        outputs = [outputs] if isinstance(outputs, DispatchNode) else list(outputs)
        stop = {id(node) for node in check_nodes(inputs, "inputs")}
        to_visit = list(check_nodes(outputs, "outputs"))
        for node in to_visit:
            self.add(node)
        visited: set[int] = set()
        while to_visit:
            node = to_visit.pop()
            if id(node) not in visited and id(node) not in stop:
                for dep in node.dependencies():
                    to_visit.append(dep)
                    self.add(dep)
                    self.add_edge(dep, node)
            visited.add(id(node))

    def add(self, node: DispatchNode) -> DispatchGraph:
        """Add `node` (no-op if present); returns the graph."""
        if id(node) not in self._ids:
            if not isinstance(node, DispatchNode):
                raise TypeError(f"a DispatchGraph holds nodes only, got {node!r}")
            self._ids[id(node)] = len(self._nodes)
            self._nodes.append(node)
            self._children.append(set())
            self._parents.append(set())
        return self

    def add_edge(self, parent: DispatchNode, child: DispatchNode) -> bool:
        """Add the edge parent → child; False if it was there already."""
        p, c = self.node_id(parent), self.node_id(child)
        if c in self._children[p]:
            return False
        self._children[p].add(c)
        self._parents[c].add(p)
        return True

    def node_id(self, node: DispatchNode) -> int:
        """The node's number in this graph; `KeyError` if absent."""
        try:
            return self._ids[id(node)]
        except KeyError:
            raise KeyError(f"{node!r} is not in this graph") from None

    def node_at(self, index: int) -> DispatchNode:
        return self._nodes[index]

    def nodes(self) -> list[DispatchNode]:
        """All nodes, in number order."""
        return list(self._nodes)

    def parents(self, node: DispatchNode) -> list[DispatchNode]:
        return [self._nodes[i] for i in sorted(self._parents[self.node_id(node)])]

    def children(self, node: DispatchNode) -> list[DispatchNode]:
        return [self._nodes[i] for i in sorted(self._children[self.node_id(node)])]

    def edges(self) -> list[tuple[DispatchNode, DispatchNode]]:
        return [
            (self._nodes[p], self._nodes[c])
            for p in range(len(self._nodes))
            for c in sorted(self._children[p])
        ]

    def leaf_nodes(self) -> list[DispatchNode]:
        """Nodes nothing in the graph depends on, in number order."""
        return [n for i, n in enumerate(self._nodes) if not self._children[i]]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return id(node) in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DispatchGraph):
            return NotImplemented
        if len(self) != len(other) or any(n not in other for n in self._nodes):
            return False
        return all(
            {id(c) for c in self.children(n)} == {id(c) for c in other.children(n)}
            for n in self._nodes
        )

    __hash__ = None  # type: ignore[assignment]

    def find_cycle(self) -> list[DispatchNode] | None:
        """The nodes of one cycle, in edge order, or None if the graph is acyclic."""
        white, grey, black = 0, 1, 2
        colour = [white] * len(self._nodes)
        for start in range(len(self._nodes)):
            if colour[start] != white:
                continue
            path = [start]
            stack = [iter(sorted(self._children[start]))]
            colour[start] = grey
            while stack:
                child = next(stack[-1], None)
                if child is None:
                    colour[path.pop()] = black
                    stack.pop()
                elif colour[child] == grey:
                    return [self._nodes[i] for i in path[path.index(child) :]]
                elif colour[child] == white:
                    colour[child] = grey
                    path.append(child)
                    stack.append(iter(sorted(self._children[child])))
        return None

    def subgraph(
        self,
        endpoints: Iterable[DispatchNode | int],
        roots: Iterable[DispatchNode | int] = (),
    ) -> DispatchGraph:
        """A new graph of part of this one.

        With endpoints: the endpoints and their ancestors, without ancestors
        reachable only through `roots` (the roots themselves are kept). With no
        endpoints: everything but the nodes whose outputs lead only into `roots`.
        """
        ends = [self._as_id(n) for n in endpoints]
        root_ids = {self._as_id(n) for n in roots}
        if ends:
            keep = set(root_ids)
            stack = [e for e in ends if e not in keep]
            while stack:
                v = stack.pop()
                if v in keep:
                    continue
                keep.add(v)
                stack.extend(p for p in self._parents[v] if p not in keep)
        else:
            discards: set[int] = set()
            stack = [p for r in root_ids for p in self._parents[r]]
            while stack:
                v = stack.pop()
                if v not in discards and self._children[v] <= root_ids | discards:
                    discards.add(v)
                    stack.extend(self._parents[v])
            keep = set(range(len(self._nodes))) - discards
        return self._induced(sorted(keep))

    def _as_id(self, node: DispatchNode | int) -> int:
        if isinstance(node, int):
            if not 0 <= node < len(self._nodes):
                raise IndexError(f"node number {node} is not in this graph of {len(self)}")
            return node
        return self.node_id(node)

    def _induced(self, ids: list[int]) -> DispatchGraph:
        sub = DispatchGraph()
        for i in ids:
            sub.add(self._nodes[i])
        kept = set(ids)
        for p in ids:
            for c in sorted(self._children[p] & kept):
                sub.add_edge(self._nodes[p], self._nodes[c])
        return sub

    def visualize(self, path: str | os.PathLike[str], states: Any = None, **options: Any) -> Any:
        """Draw the graph into `path` (.svg, .png, .pdf; .dot for the source), each node
        coloured by its state after a run; see `pydispatch.visualize.visualize`."""
        return _drawer[0](self, path, states, **options)

    def _repr_html_(self) -> str | None:
        """The graph for Jupyter: its SVG picture, or its text form without graphviz's `dot`."""
        return html_of(self)

    def __repr__(self) -> str:
        edges = sum(len(c) for c in self._children)
        return f"DispatchGraph({len(self)} nodes, {edges} edges)"


def _no_drawer(*args: Any, **kwargs: Any) -> Any:
    raise DispatcherError("no graph drawer is registered: import pydispatch.visualize")


_drawer: list[Callable[..., Any]] = [_no_drawer]


def register_drawer(draw: Callable[..., Any]) -> None:
    """Make `draw(graph, path, states, **options)` what `DispatchGraph.visualize` calls.

    The graph knows nothing of graphviz: `pydispatch.visualize` registers itself
    when `pydispatch` is imported.
    """
    _drawer[0] = draw


_html: list[Callable[[Any], str | None]] = []


def register_html(render: Callable[[Any], str | None]) -> None:
    """Make `render(obj)` the HTML Jupyter shows for a graph, a run's results or an executor.

    The core renders nothing: `pydispatch.notebook` registers itself when
    `pydispatch` is imported.
    """
    _html[:] = [render]


def html_of(obj: Any) -> str | None:
    """The HTML Jupyter shows for `obj` (`_repr_html_`); None when no renderer is registered."""
    return _html[0](obj) if _html else None


def check_nodes(nodes: Iterable[Any], what: str) -> list[DispatchNode]:
    """`nodes` as a list, or a `TypeError` naming `what` when it is not a list of nodes."""
    if isinstance(nodes, DispatchNode):
        raise TypeError(
            f"{what} must be a list of nodes, got the single node {nodes!r}: pass [node]"
        )
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Iterable):
        raise TypeError(
            f"{what} must be a node or a list of DispatchNodes (Op, DataNode, IndexNode, "
            f"CollectNode), got {nodes!r} ({type(nodes).__name__})"
        )
    nodes = list(nodes)
    for node in nodes:
        if not isinstance(node, DispatchNode):
            raise TypeError(
                f"{what} must be DispatchNodes (Op, DataNode, IndexNode, CollectNode), "
                f"got {node!r} ({type(node).__name__})"
            )
    return nodes
