"""Property: a random DAG run by each executor gives the values (and the failures)
of evaluating it directly, node by node, in topological order.

The DAGs repeat constants and identical operations on purpose: content keys make
identical nodes share a dask key, and every node object must still get its outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_cluster import Cluster
from tasks import Unlucky, combine, maybe_fail, pair, total

from pydispatch import (
    AsyncExecutor,
    Backoff,
    CollectNode,
    DaskExecutor,
    DataNode,
    DependencyError,
    DispatchGraph,
    Executor,
    IndexNode,
    Op,
    ParallelExecutor,
)


@pytest.fixture(scope="module")
def executors(dask_cluster: Cluster) -> Iterator[dict[str, Executor]]:
    made: dict[str, Executor] = {
        "async": AsyncExecutor(backoff=Backoff(first=0.01)),
        "parallel": ParallelExecutor(max_workers=2, backoff=Backoff(first=0.01)),
        "dask": DaskExecutor(dask_cluster.address),
        # every node declared short: wide parts fuse into blocks from the first example
        "dask-fused": DaskExecutor(
            dask_cluster.address,
            task_durations=dict.fromkeys(["combine", "maybe_fail", "pair", "total"], 1e-5),
        ),
    }
    yield made
    for ex in made.values():
        ex.close()


class Failed:
    """The expected outcome of a node that fails: the message of its root cause."""

    def __init__(self, message: str):
        self.message = message


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """(nodes in creation order, expected outcome of each): an int, a tuple/list or Failed."""
    nodes: list[Any] = []
    expected: list[Any] = []
    ints: list[int] = []  # indices of nodes whose value is an int
    seqs: list[int] = []  # indices of nodes whose value is a sequence

    def value(i: int) -> Any:
        return expected[i]

    def failed(deps: list[int]) -> Failed | None:
        for d in deps:
            if isinstance(expected[d], Failed):
                return expected[d]
        return None

    for _ in range(draw(st.integers(1, 10))):
        kinds = ["data", "combine"]
        if ints:
            kinds += ["pair", "collect", "maybe_fail", "combine_kw"]
        if seqs:
            kinds += ["index", "total"]
        kind = draw(st.sampled_from(kinds))
        c = draw(st.integers(-50, 50))
        if kind == "data":
            node, out, is_int = DataNode(c), c, True
        elif kind in ("combine", "combine_kw"):
            deps = draw(st.lists(st.sampled_from(ints), max_size=4)) if ints else []
            if kind == "combine_kw":
                bonus = draw(st.sampled_from(ints))
                node = Op(combine, c, *[nodes[d] for d in deps], bonus=nodes[bonus])
                bad = failed([*deps, bonus])
                out = bad or combine(c, *[value(d) for d in deps], bonus=value(bonus))
            else:
                node = Op(combine, c, *[nodes[d] for d in deps])
                out = failed(deps) or combine(c, *[value(d) for d in deps])
            is_int = True
        elif kind == "pair":
            d = draw(st.sampled_from(ints))
            node, is_int = Op(pair, c, nodes[d]), False
            out = failed([d]) or pair(c, value(d))
        elif kind == "collect":
            deps = draw(st.lists(st.sampled_from(ints), min_size=1, max_size=4))
            node, is_int = CollectNode([nodes[d] for d in deps]), False
            out = failed(deps) or [value(d) for d in deps]
        elif kind == "maybe_fail":
            d = draw(st.sampled_from(ints))
            node, is_int = Op(maybe_fail, nodes[d]), True
            out = failed([d])
            if out is None:
                try:
                    out = maybe_fail(value(d))
                except Unlucky as err:
                    out = Failed(str(err))
        elif kind == "index":
            d = draw(st.sampled_from(seqs))
            length = 2 if isinstance(nodes[d], Op) else len(nodes[d].nodes)
            i = draw(st.integers(0, length - 1))
            node, is_int = IndexNode(nodes[d], i), True
            out = failed([d]) or value(d)[i]
        else:  # total
            d = draw(st.sampled_from(seqs))
            node, is_int = Op(total, nodes[d]), True
            out = failed([d]) or total(value(d))
        copies = 1 + draw(st.integers(0, 2))  # identical twins share a content key
        for copy in range(copies):
            (ints if is_int else seqs).append(len(nodes))
            nodes.append(node if copy == 0 else twin(node))
            expected.append(out)
    return nodes, expected


def twin(node: Any) -> Any:
    """A new node object identical in content to `node` (so with the same key)."""
    if isinstance(node, DataNode):
        return DataNode(node.value)
    if isinstance(node, IndexNode):
        return IndexNode(node.node, node.index)
    if isinstance(node, CollectNode):
        return CollectNode(node.nodes)
    return Op(node.func, *node.args, **node.kwargs)


def check(executor: Executor, nodes: list[Any], expected: list[Any]) -> None:
    outputs = DispatchGraph(nodes).leaf_nodes()
    results = executor.run(outputs, throw_error=False, timeout=60)
    assert [r.is_error for r in results] == [
        isinstance(expected[nodes.index(o)], Failed) for o in outputs
    ]
    for node, want in zip(nodes, expected, strict=True):
        if isinstance(want, Failed):
            with pytest.raises(DependencyError) as info:
                node.result()
            assert info.value.node is node
            assert isinstance(info.value.root_cause, Unlucky)
            assert str(info.value.root_cause) == want.message
        else:
            assert node.result() == want


@pytest.mark.parametrize("kind", ["async", "parallel", "dask", "dask-fused"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(dag=dags())
def test_random_dag_matches_direct_evaluation(executors, kind, dag):
    nodes, expected = dag
    check(executors[kind], nodes, expected)
