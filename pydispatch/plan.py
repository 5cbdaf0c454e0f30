"""A run's plan: which nodes to compute, in which order, and which are given."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ExecutorError
from .graph import DispatchGraph, DispatchNode, check_nodes


@dataclass
class Plan:
    """Nodes in dependency order; `given` maps the cut nodes to their values."""

    outputs: list[DispatchNode]
    order: list[DispatchNode]
    given: dict[DispatchNode, Any] = field(default_factory=dict)

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
        graph = DispatchGraph(out_list, given)
        for node in given:
            if node not in graph:
                raise ValueError(
                    f"input {node!r} is not part of the graph of the outputs "
                    f"{[n.label for n in out_list]}; pass only nodes the outputs depend on"
                )
        cycle = graph.find_cycle()
        if cycle is not None:
            names = " -> ".join(repr(n.label) for n in [*cycle, cycle[0]])
            raise ExecutorError(
                f"Dispatcher can only run graphs without circular dependencies; "
                f"this one has the cycle {names}"
            )
        return cls(out_list, _topological_order(graph, given), given)

    def dependencies(self, node: DispatchNode) -> tuple[DispatchNode, ...]:
        """What `node` waits for in this run (nothing, when its value is given)."""
        return () if node in self.given else node.dependencies()


def _check_input_map(input_map: Mapping[DispatchNode, Any] | None) -> dict[DispatchNode, Any]:
    if input_map is None:
        return {}
    if not isinstance(input_map, Mapping):
        raise TypeError(f"input_map must be a mapping of node -> value, got {input_map!r}")
    check_nodes(input_map.keys(), "input_map keys")
    return dict(input_map)


def _topological_order(
    graph: DispatchGraph, given: Mapping[DispatchNode, Any]
) -> list[DispatchNode]:
    """Kahn's algorithm over the graph's edges; ties go to the lower node number."""
    nodes = graph.nodes()
    waiting = {id(n): len(graph.parents(n)) for n in nodes}
    ready = [n for n in reversed(nodes) if waiting[id(n)] == 0]
    order: list[DispatchNode] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for child in reversed(graph.children(node)):
            waiting[id(child)] -= 1
            if waiting[id(child)] == 0:
                ready.append(child)
    return order
