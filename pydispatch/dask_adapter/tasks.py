"""Translate planned nodes into one dask graph: `{key: Task}`, one update."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from dask.task_spec import DataNode as DaskDataNode
from dask.task_spec import GraphNode, Task, TaskRef

from ..graph import DataNode, DispatchNode
from ..retry import RetryPolicy
from .keys import KeyMaker
from .shipping import Shipper


class Retrying:
    """A task function that retries `func` on the worker as `policy` says."""

    __slots__ = ("func", "policy")

    def __init__(self, policy: RetryPolicy, func: Callable[..., Any]):
        self.policy = policy
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.policy.call(self.func, *args, **kwargs)


def build_tasks(
    nodes: Iterable[DispatchNode],
    keys: KeyMaker,
    given: Mapping[DispatchNode, Any],
    ship: Shipper,
    policy: RetryPolicy | None,
    skip: Callable[[str], bool] = lambda key: False,
) -> dict[str, GraphNode]:
    """The dask tasks of `nodes` (dependencies first), except keys `skip` accepts."""
    tasks: dict[str, GraphNode] = {}
    for node in nodes:
        key = keys(node)
        if key in tasks or skip(key):
            continue
        if node in given:
            tasks[key] = DaskDataNode(key, given[node])
        elif isinstance(node, DataNode):
            tasks[key] = DaskDataNode(key, node.value)
        else:
            func, args, kwargs = node.call()
            func = ship(func)
            if policy is not None:
                func = Retrying(policy, func)
            tasks[key] = cast(Any, Task)(
                key,
                func,
                *[TaskRef(keys(a)) if isinstance(a, DispatchNode) else a for a in args],
                **{
                    k: TaskRef(keys(v)) if isinstance(v, DispatchNode) else v
                    for k, v in kwargs.items()
                },
            )
    return tasks


def with_annotations(
    tasks: dict[str, GraphNode], annotations: Mapping[str, Mapping[str, Any]]
) -> dict[str, GraphNode] | HighLevelGraph:
    """`tasks` as one update in which each key of `annotations` carries its dask annotations.

    `workers` becomes a strict placement (`allow_other_workers=False`), as in
    `Client.submit(workers=...)`. Keys with equal annotations share one graph layer.
    """
    groups: dict[str, tuple[dict[str, Any], dict[str, GraphNode]]] = {}
    rest = dict(tasks)
    for key, wanted in annotations.items():
        if key not in rest or not wanted:
            continue
        layer_annotations = dict(wanted)
        if "workers" in layer_annotations:
            layer_annotations["allow_other_workers"] = False
        name = repr(sorted(layer_annotations.items()))
        groups.setdefault(name, (layer_annotations, {}))[1][key] = rest.pop(key)
    if not groups:
        return tasks
    layers: dict[str, Any] = {"pydispatch": MaterializedLayer(rest)}
    for i, (layer_annotations, group) in enumerate(groups.values()):
        layers[f"pydispatch-annotated-{i}"] = MaterializedLayer(
            group, annotations=layer_annotations
        )
    return HighLevelGraph(layers, {name: set() for name in layers})
