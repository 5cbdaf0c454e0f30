"""Fusion planning: which nodes of a run share one dask task (a block), which keep their own.

Pure planning, no dask: a function from the nodes to compute (with their keys and
dependencies) and what is known of their durations to groups of nodes. A group of
one node is an ordinary dask task; a larger group is a block (see `blocks`).

- Linear chains always fuse: a node whose only dependency has no other dependent
  joins that dependency's group. No parallelism is lost.
- Other nodes fuse only when their durations are known and short: they are packed,
  in a depth-first order (so a tree's subtrees stay together), into blocks of at
  least `MIN_BLOCK` seconds of work, while a wide graph keeps about
  `BLOCKS_PER_THREAD` blocks per worker thread.
- A node whose duration is unknown or long (`LONG_TASK`) keeps a dask task of its
  own, as does every node `may_fuse` refuses.

Groups are numbered so that every dependency edge goes from a group to itself or to
a later group: the groups form an acyclic graph, listed dependencies first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..annotations import ANNOTATIONS
from ..graph import CollectNode, DataNode, DispatchNode, IndexNode

MIN_BLOCK = 0.005
"""Seconds of work a block of short nodes does at least (dask spends ~1 ms per task)."""

MAX_BLOCK = 1.0
"""Seconds of work a block of short nodes does at most."""

BLOCKS_PER_THREAD = 4
"""Blocks per worker thread a wide graph keeps (when its work allows blocks of MIN_BLOCK)."""

LONG_TASK = 0.01
"""Seconds from which a node is long: it keeps a dask task of its own (unless in a chain)."""

PER_NODE_COST = 2e-6
"""Seconds a block spends on each node besides the node's own work."""


def may_fuse(node: DispatchNode) -> bool:
    """Whether `node` may share a dask task with other nodes.

    Not when it opts out (`node.fuse = False`), has a per-node setting dask applies
    per task (`resources`, `priority`, `workers`, `retries` not None), is impure
    (`pure=False`) or has an explicit `key`.
    """
    if getattr(node, "fuse", True) is False:
        return False
    if any(getattr(node, name, None) is not None for name in ANNOTATIONS):
        return False
    return getattr(node, "pure", True) is not False and getattr(node, "key", None) is None


class Durations:
    """What is known of how long nodes take, by label: declared, or learned from runs.

    Learned means come from blocks' own timings and from dask's task-prefix
    statistics (see `pending_prefixes`). Declared durations win over learned ones.
    """

    def __init__(self, declared: Mapping[str, float] | None = None):
        self.declared = dict(declared or {})
        self._learned: dict[str, tuple[float, int]] = {}
        self.pending: dict[str, str] = {}
        """Task prefix -> label of nodes run unfused whose duration dask may know."""
        self.threads: tuple[float, int] | None = None
        """When the cluster's worker thread count was last asked (monotonic), and the count."""

    def of(self, node: DispatchNode) -> float | None:
        """Seconds `node` is expected to take (None: unknown)."""
        if isinstance(node, (DataNode, IndexNode, CollectNode)):
            return 0.0
        label = node.label
        declared = self.declared.get(label)
        if declared is not None:
            return float(declared)
        learned = self._learned.get(label)
        return None if learned is None else learned[0] / learned[1]

    def learn(self, timings: Mapping[str, tuple[float, int]]) -> None:
        """Add a block's timings: total seconds and count, by label."""
        for label, (total, count) in timings.items():
            old_total, old_count = self._learned.get(label, (0.0, 0))
            self._learned[label] = (old_total + total, old_count + count)

    def learn_means(self, means: Mapping[str, float]) -> None:
        """Add dask's mean durations, by task prefix (of nodes recorded as pending)."""
        for prefix, mean in means.items():
            label = self.pending.pop(prefix, None)
            if label is not None and label not in self._learned:
                self._learned[label] = (mean, 1)

    def ran_unfused(self, label: str, prefix: str) -> None:
        """A node labelled `label` ran as its own dask task, in task prefix `prefix`."""
        if label not in self._learned and label not in self.declared:
            self.pending.setdefault(prefix, label)


def plan_groups(
    nodes: Sequence[DispatchNode],
    key_of: Callable[[DispatchNode], str],
    dependencies: Callable[[DispatchNode], Iterable[DispatchNode]],
    fusable: Callable[[DispatchNode], bool],
    duration: Callable[[DispatchNode], float | None],
    threads: int | Callable[[], int],
) -> list[list[DispatchNode]]:
    """Groups of `nodes` (one node per key, dependencies first), dependencies first.

    Dependencies outside `nodes` (already computed) count as dependencies, never
    as group members. `threads` is the cluster's worker thread count (or what
    gives it, asked only when short nodes are to be packed).
    """
    index = {key_of(n): i for i, n in enumerate(nodes)}
    deps: list[list[int]] = []
    outside: list[int] = []  # how many distinct dependencies outside `nodes`
    dependents: list[list[int]] = [[] for _ in nodes]
    for i, node in enumerate(nodes):
        inside: list[int] = []
        other: set[str] = set()
        for dep in dependencies(node):
            key = key_of(dep)
            j = index.get(key)
            if j is None:
                other.add(key)
            elif j not in inside:
                inside.append(j)
                dependents[j].append(i)
        deps.append(inside)
        outside.append(len(other))
    ok = [fusable(n) for n in nodes]

    # linear chains: i joins its only dependency j when j has no other dependent
    after: dict[int, int] = {}
    joined: set[int] = set()
    for i in range(len(nodes)):
        if ok[i] and len(deps[i]) == 1 and outside[i] == 0:
            j = deps[i][0]
            if ok[j] and len(dependents[j]) == 1:
                after[j] = i
                joined.add(i)
    unit_of = [-1] * len(nodes)
    units: list[list[int]] = []
    for i in range(len(nodes)):
        if i in joined:
            continue
        chain = [i]
        while chain[-1] in after:
            chain.append(after[chain[-1]])
        for member in chain:
            unit_of[member] = len(units)
        units.append(chain)

    costs: list[float | None] = []  # None: the unit keeps a task of its own
    for unit in units:
        if not all(ok[i] for i in unit):
            costs.append(None)
            continue
        times = [duration(nodes[i]) for i in unit]
        known = [t for t in times if t is not None]
        if len(known) < len(times) or max(known) >= LONG_TASK:
            costs.append(None)
        else:
            costs.append(sum(known) + PER_NODE_COST * len(unit))
    short = [c for c in costs if c is not None and c < MAX_BLOCK]
    target = MIN_BLOCK
    if short and sum(short) > MIN_BLOCK * BLOCKS_PER_THREAD:
        count = threads() if callable(threads) else threads
        target = min(max(sum(short) / (BLOCKS_PER_THREAD * max(count, 1)), MIN_BLOCK), MAX_BLOCK)

    unit_deps = [
        sorted({unit_of[j] for i in unit for j in deps[i]} - {u}) for u, unit in enumerate(units)
    ]
    order = _postorder(unit_deps)

    group_of: dict[int, int] = {}  # unit -> group
    groups: list[list[int]] = []
    open_group: int | None = None  # the group short units are being added to
    open_cost = 0.0
    for u in order:
        cost = costs[u]
        mergeable = cost is not None and cost < target
        if mergeable and open_group is not None:
            fits = open_cost + cost <= target  # type: ignore[operator]
            if fits and all(group_of[d] <= open_group for d in unit_deps[u]):
                groups[open_group].extend(units[u])
                group_of[u] = open_group
                open_cost += cost  # type: ignore[operator]
                continue
        group_of[u] = len(groups)
        groups.append(list(units[u]))
        if mergeable:
            open_group, open_cost = group_of[u], cost  # type: ignore[assignment]
    # members in the nodes' own (dependency) order
    return [[nodes[i] for i in sorted(group)] for group in groups]


def _postorder(unit_deps: list[list[int]]) -> list[int]:
    """Units dependencies first, depth first from the last units (keeps subtrees together)."""
    seen = [False] * len(unit_deps)
    order: list[int] = []
    for root in reversed(range(len(unit_deps))):
        if seen[root]:
            continue
        stack: list[tuple[int, Any]] = [(root, iter(unit_deps[root]))]
        seen[root] = True
        while stack:
            unit, pending = stack[-1]
            nxt = next(pending, None)
            if nxt is None:
                stack.pop()
                order.append(unit)
            elif not seen[nxt]:
                seen[nxt] = True
                stack.append((nxt, iter(unit_deps[nxt])))
    return order
