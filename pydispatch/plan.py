"""A run's plan: which nodes to compute, in which order, and which are given."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ExecutorError
from .gcpause import gc_paused
from .graph import DispatchGraph, DispatchNode, check_nodes


@dataclass
class Plan:
    """Nodes in dependency order; `given` maps the cut nodes to their values."""

    outputs: list[DispatchNode]
    order: list[DispatchNode]
    given: dict[DispatchNode, Any] = field(default_factory=dict)
    _deps: dict[int, tuple[DispatchNode, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Each node's dependencies in this run, by `id` (found once, while planning)."""

    @classmethod
    def build(
        cls,
        outputs: DispatchNode | DispatchGraph | Iterable[DispatchNode],
        inputs: Iterable[DispatchNode] = (),
        input_map: Mapping[DispatchNode, Any] | None = None,
    ) -> Plan:
        """Plan the run of `outputs`, cutting the graph at `inputs` and `input_map`.

        A `DispatchGraph` runs its leaf nodes (the graph is rebuilt from their
        dependencies). `inputs` take their value from their last run.
        """
        if isinstance(outputs, DispatchGraph):
            out_list = outputs.leaf_nodes()
        elif isinstance(outputs, DispatchNode):
            out_list = [outputs]
        else:
            out_list = check_nodes(outputs, "run() outputs")
        given: dict[DispatchNode, Any] = {}
        for node in check_nodes(inputs, "inputs"):
            given[node] = node.result()
        for node, value in _check_input_map(input_map).items():
            given[node] = value
        # Paused only now: `inputs` above may wait for a result (a cluster's, say).
        with gc_paused():  # ordering a large graph is a burst of small allocations
            order, deps = _order(out_list, given)
            plan = cls(out_list, order, given)
        plan._deps = deps
        return plan

    def dependencies(self, node: DispatchNode) -> tuple[DispatchNode, ...]:
        """What `node` waits for in this run (nothing, when its value is given)."""
        deps = self._deps.get(id(node))
        if deps is not None:
            return deps
        return () if node in self.given else node.dependencies()


def _check_input_map(input_map: Mapping[DispatchNode, Any] | None) -> dict[DispatchNode, Any]:
    if input_map is None:
        return {}
    if not isinstance(input_map, Mapping):
        raise TypeError(f"input_map must be a mapping of node -> value, got {input_map!r}")
    check_nodes(input_map.keys(), "input_map keys")
    return dict(input_map)


def _order(
    outputs: list[DispatchNode], given: Mapping[DispatchNode, Any]
) -> tuple[list[DispatchNode], dict[int, tuple[DispatchNode, ...]]]:
    """The nodes of `outputs`' graph cut at `given`, in dependency order, and their
    dependencies (by `id`).

    The order is the one `DispatchGraph(outputs, given)` and Kahn's algorithm give
    (ties go to the lower node number), computed without building the graph object:
    nodes are numbered as the graph numbers them (the outputs first, then a last-in,
    first-out walk), a node is ready once its distinct dependencies are placed, and
    the ready node with the lowest number goes first. Raises for an input not in the
    graph and for a cycle, as `Plan.build` documents.
    """
    number: dict[int, int] = {}
    nodes: list[DispatchNode] = []
    parents: list[dict[int, None]] = []  # distinct dependencies, by number
    children: list[list[int]] = []
    for node in outputs:
        if id(node) not in number:
            number[id(node)] = len(nodes)
            nodes.append(node)
            parents.append({})
            children.append([])
    stop = {id(node) for node in given}
    deps_of: dict[int, tuple[DispatchNode, ...]] = {i: () for i in stop}
    visited: set[int] = set()
    to_visit = list(outputs)
    while to_visit:
        node = to_visit.pop()
        nid = id(node)
        if nid in visited:
            continue
        visited.add(nid)
        if nid in stop:
            continue
        deps = node.dependencies()
        deps_of[nid] = deps
        child = number[nid]
        mine = parents[child]
        for dep in deps:
            to_visit.append(dep)
            parent = number.get(id(dep))
            if parent is None:
                if not isinstance(dep, DispatchNode):
                    raise TypeError(f"a DispatchGraph holds nodes only, got {dep!r}")
                parent = number[id(dep)] = len(nodes)
                nodes.append(dep)
                parents.append({})
                children.append([])
            if parent not in mine:
                mine[parent] = None
                children[parent].append(child)
    for node in given:
        if id(node) not in number:
            raise ValueError(
                f"input {node!r} is not part of the graph of the outputs "
                f"{[n.label for n in outputs]}; pass only nodes the outputs depend on"
            )
    waiting = [len(p) for p in parents]
    ready = [i for i in reversed(range(len(nodes))) if not waiting[i]]
    order: list[DispatchNode] = []
    while ready:
        i = ready.pop()
        order.append(nodes[i])
        below = children[i]
        if len(below) > 1:
            below = sorted(below, reverse=True)
        for child in below:
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    if len(order) < len(nodes):
        cycle = DispatchGraph(outputs, given).find_cycle() or nodes
        names = " -> ".join(repr(n.label) for n in [*cycle, cycle[0]])
        raise ExecutorError(
            f"Dispatcher can only run graphs without circular dependencies; "
            f"this one has the cycle {names}"
        )
    return order, deps_of
