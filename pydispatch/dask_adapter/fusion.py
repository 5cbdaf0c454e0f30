"""Fusion planning: which nodes of a run share one dask task (a block), which keep their own.

Pure planning, no dask: a function from the nodes to compute (with their keys and
dependencies) and what is known of their durations to groups of nodes. A group of
one node is an ordinary dask task; a larger group is a block (see `blocks`).

- Linear chains always fuse: a node whose only dependency has no other dependent
  joins that dependency's group. No parallelism is lost.
- Other nodes fuse only when their durations are known and short: they are packed,
  in a depth-first order (so a tree's subtrees stay together), into blocks of at
  least `MIN_BLOCK` seconds of work, while a wide graph keeps about
  `BLOCKS_PER_THREAD` blocks per worker thread. A block that only waits for one
  block, the only one waiting for that block, joins it (they would run one after
  the other anyway).
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
    for name in ANNOTATIONS:
        if getattr(node, name, None) is not None:
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
    keys: list[str] = []
    index: dict[str, int] = {}
    position: dict[int, int] = {}  # by `id`: spares keying a dependency again
    for i, node in enumerate(nodes):
        key = key_of(node)
        keys.append(key)
        index[key] = i
        position[id(node)] = i
    deps: list[list[int]] = []
    outside: list[int] = []  # how many distinct dependencies outside `nodes`
    dependents: list[list[int]] = [[] for _ in nodes]
    ok: list[bool] = []
    seconds: list[float | None] = []  # None: unknown, or the node keeps a task of its own
    for i, node in enumerate(nodes):
        inside: list[int] = []
        other: set[str] = set()
        for dep in dependencies(node):
            j = position.get(id(dep))
            if j is not None:
                j = index[keys[j]]
            else:
                key = key_of(dep)
                j = index.get(key)
                if j is None:
                    other.add(key)
                    continue
            if j not in inside:
                inside.append(j)
                dependents[j].append(i)
        deps.append(inside)
        outside.append(len(other))
        if fusable(node):
            ok.append(True)
            t = duration(node)
            seconds.append(None if t is None or t >= LONG_TASK else t)
        else:
            ok.append(False)
            seconds.append(None)

    # linear chains: i joins its only dependency j when j has no other dependent
    after: dict[int, int] = {}
    for i in range(len(nodes)):
        if ok[i] and len(deps[i]) == 1 and outside[i] == 0:
            j = deps[i][0]
            if ok[j] and len(dependents[j]) == 1:
                after[j] = i
    if not after:  # no chain: each node is a unit of its own
        unit_of = list(range(len(nodes)))
        units = [[i] for i in unit_of]
    else:
        joined = set(after.values())
        unit_of = [-1] * len(nodes)
        units = []
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
        total = 0.0
        for i in unit:
            t = seconds[i]
            if t is None:
                costs.append(None)
                break
            total += t
        else:
            costs.append(total + PER_NODE_COST * len(unit))
    short = [c for c in costs if c is not None and c < MAX_BLOCK]
    target = MIN_BLOCK
    if short and sum(short) > MIN_BLOCK * BLOCKS_PER_THREAD:
        count = threads() if callable(threads) else threads
        target = min(max(sum(short) / (BLOCKS_PER_THREAD * max(count, 1)), MIN_BLOCK), MAX_BLOCK)

    unit_deps: list[list[int]] = []
    for u, unit in enumerate(units):
        if len(unit) == 1:
            found = [unit_of[j] for j in deps[unit[0]]]
            if len(found) > 1:
                found = sorted(set(found))
            unit_deps.append(found)
        else:
            unit_deps.append(sorted({unit_of[j] for i in unit for j in deps[i]} - {u}))
    order = _postorder(unit_deps)

    group_of: dict[int, int] = {}  # unit -> group
    groups: list[list[int]] = []
    group_cost: list[float | None] = []  # None: not a block of short units
    open_group: int | None = None  # the group short units are being added to
    open_cost = 0.0
    for u in order:
        cost = costs[u]
        mergeable = cost is not None and cost < target
        if mergeable and open_group is not None and open_cost + cost <= target:  # type: ignore[operator]
            for d in unit_deps[u]:
                if group_of[d] > open_group:
                    break
            else:
                groups[open_group].extend(units[u])
                group_of[u] = open_group
                open_cost += cost  # type: ignore[operator]
                group_cost[open_group] = open_cost
                continue
        group_of[u] = len(groups)
        groups.append(list(units[u]))
        group_cost.append(cost if mergeable else None)
        if mergeable:
            open_group, open_cost = group_of[u], cost  # type: ignore[assignment]
    if len(groups) > 1:
        _merge_block_chains(groups, group_cost, group_of, unit_of, deps)
    # members in the nodes' own (dependency) order
    return [[nodes[i] for i in sorted(group)] for group in groups if group]


def _merge_block_chains(
    groups: list[list[int]],
    cost: list[float | None],
    group_of: Mapping[int, int],
    unit_of: Sequence[int],
    deps: Sequence[Sequence[int]],
) -> None:
    """Merge, in place, each block of short nodes into the block it waits for, when it
    waits for no other group and is the only group waiting for that block.

    Such a pair runs one after the other whatever happens (a tree packed into blocks
    gives them: the block holding the root waits for the block of the subtrees
    below), so one task does the same work without a round trip to the scheduler
    between them: no parallelism is lost, as with chains of nodes. A merged block
    stays under `MAX_BLOCK`. A merged group is left empty.
    """
    waits: list[set[int]] = [set() for _ in groups]
    waited_by: list[set[int]] = [set() for _ in groups]
    for g, members in enumerate(groups):
        for i in members:
            for j in deps[i]:
                h = group_of[unit_of[j]]
                if h != g:
                    waits[g].add(h)
                    waited_by[h].add(g)
    into = list(range(len(groups)))  # the group each one was merged into (or itself)
    for g in range(len(groups)):
        mine = cost[g]
        if mine is None or len(waits[g]) != 1:
            continue
        (before,) = waits[g]
        if waited_by[before] != {g}:
            continue
        target = into[before]
        theirs = cost[target]
        if theirs is None or theirs + mine > MAX_BLOCK:
            continue
        groups[target].extend(groups[g])
        groups[g] = []
        cost[target] = theirs + mine
        into[g] = target


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
