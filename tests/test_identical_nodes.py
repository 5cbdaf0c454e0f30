"""Identical node objects share a content key on dask, and each still gets its outcome.

Content keys make `Op(add, 2, 3)` twice one dask task, computed once; every node
object of a run or a submission must still answer `result()` with the value (or
the error), whether it is an output, a dependency or both.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator

import pytest
from real_cluster import Cluster

from pydispatch import (
    CancelledError,
    Client,
    DaskExecutor,
    DataNode,
    DependencyError,
    Op,
    get_key,
)


class Boom(Exception):
    pass


def explode(x: int) -> int:
    raise Boom(f"boom {x}")


@pytest.fixture
def executor(dask_cluster: Cluster) -> Iterator[DaskExecutor]:
    with DaskExecutor(dask_cluster.address) as ex:
        yield ex


def test_duplicate_outputs_each_get_their_value(executor: DaskExecutor) -> None:
    a, b = Op(operator.add, 2, 3), Op(operator.add, 2, 3)
    assert get_key(a) == get_key(b)
    results = executor.run([a, b])
    assert [r.unwrap().result() for r in results] == [5, 5]
    assert [r.unwrap() for r in results] == [a, b]


def test_the_same_output_listed_twice(executor: DaskExecutor) -> None:
    a = Op(operator.add, 2, 3)
    assert [r.unwrap().result() for r in executor.run([a, a])] == [5, 5]


def test_identical_dependencies_each_get_their_value(executor: DaskExecutor) -> None:
    x, y = Op(operator.add, 1, 1), Op(operator.add, 1, 1)
    (r,) = executor.run([Op(operator.mul, x, y)])
    assert r.unwrap().result() == 4
    assert (x.result(), y.result()) == (2, 2)


def test_equal_data_nodes(executor: DaskExecutor) -> None:
    d1, d2 = DataNode(7), DataNode(7)
    total = Op(operator.add, d1, d2)
    assert executor.run([total])[0].unwrap().result() == 14
    assert (d1.result(), d2.result()) == (7, 7)


def test_a_node_both_output_and_twin_of_a_dependency(executor: DaskExecutor) -> None:
    x, y = Op(operator.add, 1, 2), Op(operator.add, 1, 2)
    z = Op(operator.neg, x)
    results = executor.run([z, y])
    assert [r.unwrap().result() for r in results] == [-3, 3]
    assert x.result() == 3


def test_identical_failing_nodes_both_report_the_error(executor: DaskExecutor) -> None:
    f1, f2 = Op(explode, 1), Op(explode, 1)
    after1, after2 = Op(operator.neg, f1), Op(operator.abs, f2)
    results = executor.run([after1, after2, f2], throw_error=False)
    assert [r.is_error for r in results] == [True, True, True]
    for node in (f1, f2):
        with pytest.raises(DependencyError) as info:
            node.result()
        assert info.value.node is node
        assert isinstance(info.value.err, Boom)
        assert "boom 1" in str(info.value.err)
    for node, err in ((after1, results[0].error), (after2, results[1].error)):
        assert err is not None and err.node is node
        assert isinstance(err.root_cause, Boom)


def test_identical_nodes_across_two_runs(executor: DaskExecutor) -> None:
    first = Op(operator.mul, 6, 7)
    assert executor.run([first])[0].unwrap().result() == 42
    second = Op(operator.mul, 6, 7)
    assert executor.run([second])[0].unwrap().result() == 42
    assert (first.result(), second.result()) == (42, 42)


def test_cancel_and_reset_act_on_every_node_sharing_a_key(dask_cluster: Cluster) -> None:
    with Client(dask_cluster.address) as client:
        a, b = Op(operator.add, 20, 22), Op(operator.add, 20, 22)
        client.submit(a)
        client.submit(b)
        assert (client.result(a), b.result(), a.result()) == (42, 42, 42)
        client.cancel([a])
        for node in (a, b):
            with pytest.raises(CancelledError):
                node.result()
        client.submit(b)
        assert (a.result(), b.result()) == (42, 42)
    with DaskExecutor(dask_cluster.address) as ex:
        c, d = Op(operator.add, 1, 2), Op(operator.add, 1, 2)
        ex.run([c, d])
        ex.reset()
        for node in (c, d):
            with pytest.raises(Exception, match="gone"):
                node.result()
