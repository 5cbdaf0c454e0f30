"""Translate planned nodes into one dask graph: `{key: Task}`, one update."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from dask.task_spec import DataNode as DaskDataNode
from dask.task_spec import GraphNode, Task, TaskRef

from ..graph import DataNode, DispatchNode
from ..retry import RetryPolicy
from .blocks import Guarded, Member, RunBlock, constant, pick
from .keys import KeyMaker, label_prefix
from .shipping import Shipper
from .transfer import function_name

_NO_KWARGS: dict[str, Any] = {}


class Retrying:
    """A task function that retries `func` on the worker as `policy` says."""

    __slots__ = ("func", "policy")

    def __init__(self, policy: RetryPolicy, func: Callable[..., Any]):
        self.policy = policy
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.policy.call(self.func, *args, **kwargs)

    def __dask_tokenize__(self) -> Any:
        return ("pydispatch.Retrying", id(self.policy), self.func)


def fused_key(members: Sequence[str], label: str, keep: frozenset[str] | None) -> str:
    """The key of the block of node keys `members`: its content, under the last label."""
    digest = hashlib.sha1("\x00".join(members).encode())
    if keep is not None:
        digest.update(b"\x01" + "\x00".join(sorted(keep)).encode())
    return f"{label_prefix(label)}-fused-{digest.hexdigest()[:32]}"


class TaskBuilder:
    """Builds the dask tasks of groups of nodes (see `fusion.plan_groups`), one update.

    A group of one node is a task of its own, keyed by the node's key, whose value is
    the node's value; a larger group is a block task (see `blocks.RunBlock`).
    `holder_of` gives the task key holding an already submitted node key; `keep`
    says which members' values blocks return (None: all of them).
    """

    def __init__(
        self,
        keys: KeyMaker,
        given: Mapping[DispatchNode, Any],
        ship: Shipper,
        ship_checked: Shipper,
        policy: RetryPolicy | None,
        holder_of: Callable[[str], str | None],
        keep: Callable[[str], bool] | None = None,
        guarded: frozenset[str] = frozenset(),
    ):
        self.keys = keys
        self.given = given
        self.ship = ship
        self.ship_checked = ship_checked
        self.policy = policy
        self.holder_of = holder_of
        self.keep = keep
        self.guarded = guarded
        """Node keys of unfused nodes a block needs: their failures become values."""
        self.tasks: dict[str, GraphNode] = {}
        self.holders: dict[str, str] = {}
        """Node key -> key of the task of this update that computes it."""
        self._functions: dict[int, tuple[Any, Callable[..., Any], str]] = {}
        """By `id`: a member function, what the block calls for it, and its name."""

    def holder(self, key: str) -> str:
        """The task key holding node `key` (its own key unless it is fused)."""
        found = self.holders.get(key) or self.holder_of(key)
        return key if found is None else found

    def add(self, group: Sequence[DispatchNode], avoid: Callable[[str], bool]) -> str:
        """Add the task of `group`; its task key (never one `avoid` accepts, for blocks)."""
        if len(group) == 1:
            node = group[0]
            key = self.keys(node)
            # A guarded task's value is a `Failure` where the node raised: it must not
            # share its key with the plain task of the same node (another update or
            # client reading that key would take the `Failure` for a value).
            task_key = f"{key}-guarded" if key in self.guarded else key
            while avoid(task_key):  # a failed node run again: a fresh key, so dask runs it
                task_key = f"{key}-{uuid.uuid4().hex}"
            self.tasks[task_key] = self._single(node, task_key)
            self.holders[key] = task_key
            return task_key
        member_keys = [self.keys(n) for n in group]
        inside = set(member_keys)
        keep = None if self.keep is None else frozenset(k for k in member_keys if self.keep(k))
        key = fused_key(member_keys, group[-1].label, keep)
        while avoid(key):  # a failed block run again: a fresh key, so dask computes it
            key = f"{key}-{uuid.uuid4().hex}"
        sources: list[str] = []
        where: dict[str, int] = {}
        slot: dict[str, int] = {}
        members = []
        for node, node_key in zip(group, member_keys, strict=True):
            member = self._member(node, node_key)
            for _, ref in member.refs:
                if ref in inside or ref in where:
                    continue
                holder = self.holder(ref)
                if holder not in slot:
                    slot[holder] = len(sources)
                    sources.append(holder)
                where[ref] = slot[holder]
            members.append(member)
        run = RunBlock(tuple(members), where, keep)
        self.tasks[key] = cast(Any, Task)(key, run, *[TaskRef(s) for s in sources])
        for node_key in member_keys:
            self.holders[node_key] = key
        return key

    def _member(self, node: DispatchNode, key: str) -> Member:
        if node in self.given:
            return Member(key, node.label, constant, (self.given[node],), {}, node.label)
        if isinstance(node, DataNode):
            return Member(key, node.label, constant, (node.value,), {}, node.label)
        func, args, kwargs = node.call()
        found = self._functions.get(id(func))
        if found is None or found[0] is not func:
            shipped = self.ship(func)
            if self.policy is not None:
                shipped = Retrying(self.policy, shipped)
            found = self._functions[id(func)] = (func, shipped, function_name(func))
        keys = self.keys
        refs: list[tuple[int | str, str]] = []
        member_args: tuple[Any, ...] = args
        for i, arg in enumerate(args):
            if isinstance(arg, DispatchNode):
                refs.append((i, keys(arg)))
        if refs:
            member_args = tuple(None if isinstance(a, DispatchNode) else a for a in args)
        member_kwargs = _NO_KWARGS  # shared: blocks never change a member's kwargs
        if kwargs:
            refs.extend((k, keys(v)) for k, v in kwargs.items() if isinstance(v, DispatchNode))
            member_kwargs = {
                k: None if isinstance(v, DispatchNode) else v for k, v in kwargs.items()
            }
        return Member(key, node.label, found[1], member_args, member_kwargs, found[2], tuple(refs))

    def _ref(self, node: DispatchNode) -> Any:
        key = self.keys(node)
        holder = self.holder(key)
        if holder == key:
            return TaskRef(key)
        return Task(f"{key}-pick", pick, TaskRef(holder), key)

    def _single(self, node: DispatchNode, key: str) -> GraphNode:
        if node in self.given:
            return DaskDataNode(key, self.given[node])
        if isinstance(node, DataNode):
            return DaskDataNode(key, node.value)
        func, args, kwargs = node.call()
        func = self.ship_checked(func)
        if self.policy is not None:
            func = Retrying(self.policy, func)
        if self.keys(node) in self.guarded:
            func = Guarded(func)
        return cast(Any, Task)(
            key,
            func,
            *[self._ref(a) if isinstance(a, DispatchNode) else a for a in args],
            **{k: self._ref(v) if isinstance(v, DispatchNode) else v for k, v in kwargs.items()},
        )


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
