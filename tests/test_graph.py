"""The graph API: Dispatcher.jl's "Graph", "Macros" and "Show" tests (research doc §3,
tests 1-12 and 26, with 0-based node numbers), plus labels, `op`, `find_cycle`,
`leaf_nodes` and `get_key`."""

from __future__ import annotations

import functools
import operator
import re
import threading

import pytest
from tasks import MyType, add, edges_by_number, inc, mul

from pydispatch import (
    CollectNode,
    DataNode,
    DispatchGraph,
    DispatchNode,
    ExecutorError,
    IndexNode,
    Op,
    get_key,
    op,
)

# ------------------------------------------------------------------ fixtures

# The F10 fixture: ten nodes, edges given explicitly (1-based in the research
# doc, 0-based here: node n_i has number i - 1).
F10_EDGES = [(2, 1), (2, 3), (3, 4), (3, 5), (4, 6), (5, 6), (6, 7), (6, 8), (9, 8), (9, 10)]


def _constant(i: int):
    return lambda: i


@pytest.fixture
def f10() -> tuple[DispatchGraph, dict[int, Op]]:
    """(graph, {i: n_i}) with n_i pushed in order and the edges E added in order."""
    n = {i: Op(_constant(i)) for i in range(1, 11)}
    g = DispatchGraph()
    for i in range(1, 11):
        g.add(n[i])
    for p, c in F10_EDGES:
        g.add_edge(n[p], n[c])
    return g, n


def _graph(nodes: list[DispatchNode], edges: list[tuple[DispatchNode, DispatchNode]]):
    g = DispatchGraph()
    for node in nodes:
        g.add(node)
    for p, c in edges:
        g.add_edge(p, c)
    return g


# ------------------------------------------------------------------ "Graph"


def test_1_adding():
    g = DispatchGraph()
    node1, node2 = Op(lambda: 3), Op(lambda: 4)
    assert g.add(node1) is g
    g.add(node2)
    assert g.add_edge(node1, node2) is True
    assert len(g) == 2
    assert len(g.nodes()) == 2
    assert g.node_id(node1) == 0
    assert g.node_id(node2) == 1
    assert g.node_at(0) is node1
    assert g.node_at(1) is node2
    assert len(g.edges()) == 1
    assert g.children(node1) == [node2]
    assert g.parents(node2) == [node1]
    # adding again is a no-op, and so is adding an edge twice
    g.add(node1)
    assert len(g) == 2
    assert g.add_edge(node1, node2) is False
    assert len(g.edges()) == 1


def test_add_edge_with_an_absent_node_raises_keyerror():
    g = DispatchGraph()
    a, b = Op(three_like), Op(three_like)
    g.add(a)
    with pytest.raises(KeyError, match="not in this graph"):
        g.add_edge(a, b)


def three_like() -> int:
    return 3


def test_add_rejects_non_nodes():
    with pytest.raises(TypeError, match="42"):
        DispatchGraph().add(42)  # type: ignore[arg-type]


def test_2_equality(f10):
    g1, n = f10
    g2 = DispatchGraph()
    for i in range(10, 0, -1):
        g2.add(n[i])
    assert g1 != g2
    for p, c in reversed(F10_EDGES):
        assert g1 != g2
        g2.add_edge(n[p], n[c])
    assert g1 == g2
    assert g2.node_id(n[10]) == 0  # really a different numbering
    g2.add(n[1])
    assert g1 == g2
    g2.add_edge(n[2], n[10])
    assert g1 != g2


def test_equality_needs_the_same_node_objects():
    a, b = Op(three_like), Op(three_like)
    assert DispatchGraph(a) != DispatchGraph(b)
    assert DispatchGraph(a) == DispatchGraph(a)
    assert DispatchGraph(a) != "not a graph"


def test_3_ancestor_subgraph(f10):
    g, n = f10
    truth_a = _graph([n[9], n[10]], [(n[9], n[10])])
    assert g.subgraph([n[9], n[10]]) == truth_a
    assert g.subgraph([8, 9]) == truth_a
    assert g.subgraph([n[10]]) == truth_a
    assert g.subgraph([9]) == truth_a

    truth_b = _graph([n[i] for i in range(1, 8)], [(n[p], n[c]) for p, c in F10_EDGES[:7]])
    assert g.subgraph([n[1], n[7]]) == truth_b
    assert g.subgraph([0, 6]) == truth_b
    assert g.subgraph([n[7]]) != truth_b  # n1 is not an ancestor of n7
    assert n[1] not in g.subgraph([n[7]])


def test_3_ancestor_subgraph_with_roots_keeps_the_roots_and_stops_there(f10):
    g, n = f10
    sub = g.subgraph([n[7]], [n[6]])
    # n7 and root n6; the ancestors of n7 through n6 only are left out
    assert set(sub.nodes()) == {n[6], n[7]}
    assert sub == _graph([n[6], n[7]], [(n[6], n[7])])
    # an unrelated root is kept too
    assert n[10] in g.subgraph([n[7]], [n[6], n[10]])


def test_4_descendant_subgraph(f10):
    g, n = f10
    truth_c = _graph(
        [n[i] for i in (1, 2, 6, 7, 8, 9, 10)],
        [(n[6], n[7]), (n[6], n[8]), (n[9], n[8]), (n[9], n[10]), (n[2], n[1])],
    )
    assert g.subgraph([], [n[6]]) == truth_c
    assert g.subgraph([], [5]) == truth_c
    assert g.subgraph([], [n[6], n[5]]) == truth_c
    assert g.subgraph([], [5, 4]) == truth_c

    truth_d = _graph([n[1], n[7], n[8], n[10]], [])
    assert g.subgraph([], [0, 6, 7, 9]) == truth_d
    assert g.subgraph([], [n[1], n[7], n[8], n[10]]) == truth_d


def test_subgraph_rejects_numbers_out_of_range(f10):
    g, _ = f10
    with pytest.raises(IndexError, match="10"):
        g.subgraph([10])


def test_leaf_nodes(f10):
    g, n = f10
    assert g.leaf_nodes() == [n[1], n[7], n[8], n[10]]
    a = Op(three_like)
    b = Op(inc, a)
    c = Op(inc, a)
    assert DispatchGraph([b, c]).leaf_nodes() == [b, c]
    assert DispatchGraph().leaf_nodes() == []


def test_find_cycle():
    a = Op(identity_label("a"), 1)
    b = Op(inc, a)
    c = Op(inc, b)
    assert DispatchGraph(c).find_cycle() is None

    # self loop
    s = Op(inc, 1)
    s.args = (s,)
    assert DispatchGraph(s).find_cycle() == [s]

    # 2-cycle
    x = Op(inc, 3)
    y = Op(inc, x)
    x.args = (y,)
    cycle = DispatchGraph(x).find_cycle()
    assert cycle is not None and set(cycle) == {x, y} and len(cycle) == 2

    # a 3-cycle below an acyclic part: only the cycle's nodes, in edge order
    p = Op(inc, 0)
    q = Op(inc, p)
    r = Op(inc, q)
    p.args = (r,)
    top = Op(add, r, Op(inc, 5))
    cycle = DispatchGraph(top).find_cycle()
    assert cycle is not None and set(cycle) == {p, q, r}
    g = DispatchGraph(top)
    for i, node in enumerate(cycle):
        assert cycle[(i + 1) % len(cycle)] in g.children(node)


def identity_label(label: str):
    def f(x):
        return x

    f.__name__ = label
    return f


def test_graph_from_outputs_and_inputs():
    a = Op(three_like)
    b = Op(inc, a)
    c = Op(inc, b)
    g = DispatchGraph(c, inputs=[b])
    # the input is in the graph, its own dependencies are not explored
    assert set(g.nodes()) == {b, c}
    assert g.children(b) == [c]
    assert DispatchGraph([c]) == DispatchGraph(c)
    assert len(DispatchGraph(c)) == 3


def test_graph_rejects_non_node_outputs_and_inputs():
    with pytest.raises(TypeError, match="'abc'"):
        DispatchGraph(["abc"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="7"):
        DispatchGraph(Op(three_like), inputs=[7])  # type: ignore[list-item]


def test_dependencies_are_top_level_node_args_and_kwargs_in_order():
    a, b, c = Op(three_like), Op(three_like), Op(three_like)
    node = Op(add, 1, a, [b], x=c, y=2)
    assert node.dependencies() == (a, c)  # a list of nodes is not scanned
    twice = Op(add, a, a)
    assert twice.dependencies() == (a, a)
    assert len(DispatchGraph(twice)) == 2
    assert DataNode(a).dependencies() == ()
    assert IndexNode(a, 0).dependencies() == (a,)
    assert CollectNode([a, b]).dependencies() == (a, b)


def test_nodes_compare_by_identity():
    assert Op(three_like) != Op(three_like)
    assert DataNode(3) != DataNode(3)
    a = Op(three_like)
    assert a == a
    assert len({a, a, Op(three_like)}) == 2


# ------------------------------------------------------------------ "Macros" / "Simple"


def test_5_op():
    node = Op(sum, 4)
    assert isinstance(node, Op)
    g = DispatchGraph(node)
    assert len(g) == 1
    assert isinstance(g.nodes()[0], Op)
    assert node.func is sum
    assert node.args == (4,)
    assert node.kwargs == {}


def test_6_7_op_with_kwargs():
    node = Op(str.split, "foo bar", maxsplit=1)
    g = DispatchGraph(node)
    assert len(g) == 1 and isinstance(g.nodes()[0], Op)
    assert node.func is str.split
    assert node.args == ("foo bar",)
    assert node.kwargs == {"maxsplit": 1}


def test_8_op_with_a_type_as_function():
    node = Op(int, 2.0)
    assert len(DispatchGraph(node)) == 1
    assert node.func is int
    assert node.args == (2.0,)
    assert node.kwargs == {}
    assert node.label == "int"


@pytest.mark.parametrize("value", [3, True, None, [1, 2], "text"])
def test_9_non_callable_rejected(value):
    with pytest.raises(TypeError, match=re.escape(repr(value))):
        Op(value)


# ------------------------------------------------------------------ "Macros" / "Complex"


def comp(node):
    return Op(operator.add, node, 3), Op(operator.add, node, 1)


def test_10_components():
    a = Op(operator.add, 1, 2)
    b, c = comp(a)
    d = Op(operator.mul, b, c)
    g = DispatchGraph(d)
    assert len(g) == 4
    assert all(isinstance(n, Op) for n in g.nodes())

    a2 = Op(operator.add, 1, 2)
    x = Op(operator.add, a2, 3)
    y = Op(operator.add, a2, 1)
    d2 = Op(operator.mul, x, y)
    g2 = DispatchGraph(d2)
    # structurally identical: same numbering, same edges
    assert [g.node_id(n) for n in (d, b, c, a)] == [0, 1, 2, 3]
    assert [g2.node_id(n) for n in (d2, x, y, a2)] == [0, 1, 2, 3]
    assert edges_by_number(g) == edges_by_number(g2) == {(1, 0), (2, 0), (3, 2), (3, 1)}
    assert [n.func for n in g.nodes()] == [n.func for n in g2.nodes()]  # type: ignore[attr-defined]


def foo(var: MyType):
    return Op(operator.add, var, 3), Op(operator.add, var, 1)


def test_11_12_functions_with_values_of_another_module():
    a = MyType(3)  # a plain value, not a node
    b, c = foo(a)
    d = Op(operator.mul, b, c)
    g = DispatchGraph(d)
    assert len(g) == 3
    assert all(isinstance(n, Op) for n in g.nodes())

    x = Op(operator.add, a, 3)
    y = Op(operator.add, a, 1)
    d2 = Op(operator.mul, x, y)
    g2 = DispatchGraph(d2)
    assert edges_by_number(g) == edges_by_number(g2) == {(1, 0), (2, 0)}
    assert [g.node_id(n) for n in (d, b, c)] == [g2.node_id(n) for n in (d2, x, y)]


# ------------------------------------------------------------------ "Show"


def test_26_string_representations():
    assert repr(DispatchGraph()) == "DispatchGraph(0 nodes, 0 edges)"
    node = Op(print, 1, 1)
    node.set_label("op")
    assert repr(node) == "Op('op')"
    index_node = IndexNode(node, 0)
    assert repr(index_node) == "IndexNode('op[0]')"
    assert repr(DataNode(node)) == "DataNode(Op('op'))"
    collect_node = CollectNode([node, index_node])
    assert collect_node.label == "2 DispatchNodes"
    assert repr(collect_node) == "CollectNode('2 DispatchNodes')"
    g = DispatchGraph()
    g.add(node)
    g.add(index_node)
    g.add_edge(node, index_node)
    assert repr(g) == "DispatchGraph(2 nodes, 1 edges)"
    assert g.nodes() == [node, index_node]  # number order


# ------------------------------------------------------------------ labels


def test_default_labels():
    assert Op(sum, 4).label == "sum"
    assert Op(str.split, "a b").label == "split"
    assert Op(int, 2.0).label == "int"
    assert Op(lambda: 1).label == "<lambda>"
    assert Op(functools.partial(add, 1)).label == "partial"
    assert Op(MyType, 1).label == "MyType"
    assert IndexNode(Op(sum, 4), 1).label == "sum[1]"
    assert Op(sum, 4)["k"].label == "sum['k']"
    assert DataNode(3).label == "data"


def test_set_label_returns_the_label():
    node = Op(sum, 4)
    assert node.set_label("total") == "total"
    assert node.label == "total"
    coll = CollectNode([node])
    assert coll.set_label("all") == "all"
    assert coll.label == "all"


def test_nodes_without_labels_cannot_set_them():
    with pytest.raises(AttributeError):
        IndexNode(Op(sum, 4), 0).set_label("x")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        DataNode(3).set_label("x")  # type: ignore[attr-defined]


def test_collect_node_default_labels():
    ops = [Op(three_like) for _ in range(200)]
    assert CollectNode(ops).label == "200 Ops"
    assert CollectNode(ops[:1]).label == "1 Op"
    assert CollectNode([ops[0], ops[1][0]]).label == "2 DispatchNodes"
    assert CollectNode([DataNode(1), DataNode(2)]).label == "2 DataNodes"
    assert CollectNode(iter(ops[:3])).label == "3 Ops"  # any iterable
    assert CollectNode(ops[:2], label="pair").label == "pair"
    assert CollectNode([]).label == "0 DispatchNodes"


def test_collect_node_rejects_non_nodes():
    with pytest.raises(TypeError, match="5"):
        CollectNode([Op(three_like), 5])  # type: ignore[list-item]


# ------------------------------------------------------------------ op decorator


def test_op_decorator_plain():
    @op
    def total(a, b, *, c=0):
        return a + b + c

    x = Op(three_like)
    node = total(x, 2, c=5)
    assert isinstance(node, Op)
    assert node.func is total.__wrapped__
    assert node.args == (x, 2)
    assert node.kwargs == {"c": 5}
    assert node.label == "total"
    assert node.pure is True
    assert node.dependencies() == (x,)
    assert total.__name__ == "total"


def test_op_decorator_with_label_and_pure():
    @op(label="load", pure=False)
    def load(path):
        return path

    node = load("x.dat")
    assert isinstance(node, Op)
    assert node.label == "load"
    assert node.pure is False
    assert node.args == ("x.dat",)
    # the options do not leak between calls or into the default form
    assert load("y.dat") is not node
    assert op(load.__wrapped__)("z").label == "load"


@pytest.mark.parametrize("value", [3, "f", [1]])
def test_op_decorator_rejects_non_callables(value):
    with pytest.raises(TypeError, match=re.escape(repr(value))):
        op(value)
    with pytest.raises(TypeError, match=re.escape(repr(value))):
        op(label="x")(value)


# ------------------------------------------------------------------ indexing and unpacking


def test_unpacking_a_node_raises_typeerror():
    node = Op(divmod, 7, 2)
    with pytest.raises(TypeError, match=r"cannot be unpacked.*node\[0\]"):
        _q, _r = node
    with pytest.raises(TypeError):
        list(node)


def test_indexing_gives_index_nodes():
    node = Op(divmod, 7, 2)
    first, second = node[0], node[1]
    assert isinstance(first, IndexNode) and isinstance(second, IndexNode)
    assert first.node is node and first.index == 0
    assert second.index == 1
    assert first is not node[0]  # a fresh node each time
    assert first.dependencies() == (node,)
    nested = node[0][1]
    assert isinstance(nested, IndexNode) and nested.node.node is node


def test_index_node_needs_a_node():
    with pytest.raises(TypeError, match=r"\(1, 2\)"):
        IndexNode((1, 2), 0)  # type: ignore[arg-type]


# ------------------------------------------------------------------ get_key


def test_get_key_equal_for_identical_nodes_built_separately():
    assert get_key(Op(add, 1, 2)) == get_key(Op(add, 1, 2))
    assert get_key(Op(add, 1, x=2)) == get_key(Op(add, 1, x=2))
    assert get_key(DataNode([1, "a"])) == get_key(DataNode([1, "a"]))
    assert get_key(Op(divmod, 7, 2)[1]) == get_key(Op(divmod, 7, 2)[1])
    assert get_key(CollectNode([Op(inc, 1)])) == get_key(CollectNode([Op(inc, 1)]))
    node = Op(add, 1, 2)
    assert get_key(node) == get_key(node)


@pytest.mark.parametrize(
    "other",
    [
        lambda: Op(add, 1, 3),
        lambda: Op(mul, 1, 2),
        lambda: Op(add, 2, 1),
        lambda: Op(add, 1, 2.0),
        lambda: Op(add, 1, 2, x=0),
        lambda: Op(add, 1, Op(inc, 1)),
    ],
)
def test_get_key_differs_when_anything_differs(other):
    assert get_key(Op(add, 1, 2)) != get_key(other())


def test_get_key_folds_in_dependency_keys():
    assert get_key(Op(inc, Op(add, 1, 2))) == get_key(Op(inc, Op(add, 1, 2)))
    assert get_key(Op(inc, Op(add, 1, 2))) != get_key(Op(inc, Op(add, 1, 3)))
    assert get_key(Op(inc, x=Op(add, 1, 2))) != get_key(Op(inc, x=Op(add, 1, 3)))
    assert get_key(Op(divmod, 7, 2)[0]) != get_key(Op(divmod, 7, 2)[1])
    assert get_key(Op(divmod, 7, 2)[0]) != get_key(Op(divmod, 9, 2)[0])
    assert get_key(CollectNode([Op(inc, 1)])) != get_key(CollectNode([Op(inc, 2)]))
    # a constant and a node computing it are different things
    assert get_key(Op(inc, DataNode(1))) != get_key(Op(inc, 1))


def test_get_key_impure_and_explicit_keys():
    impure = op(pure=False)(add)
    a, b = impure(1, 2), impure(1, 2)
    assert get_key(a) != get_key(b)
    # a fresh key each time it is keyed (submitted), so it runs again
    assert get_key(a) != get_key(a)
    assert get_key(a).startswith("add-")
    assert get_key(Op(inc, a)) != get_key(Op(inc, b))
    node = Op(add, 1, 2)
    node.pure = False
    assert get_key(node) != get_key(Op(add, 1, 2))
    explicit = Op(add, 1, 2)
    explicit.key = "my-key"
    assert get_key(explicit) == "my-key"


def test_get_key_has_the_label_as_prefix():
    node = Op(add, 1, 2)
    assert get_key(node).startswith("add-")
    node.set_label("load data")
    assert get_key(node).startswith("load data-")
    assert get_key(DataNode(3)).startswith("data-")


def test_get_key_of_a_long_chain_does_not_recurse():
    node: DispatchNode = DataNode(0)
    for _ in range(5000):
        node = Op(inc, node)
    key = get_key(node)
    assert key.startswith("inc-")
    assert key != get_key(node.args[0])  # type: ignore[attr-defined]


def test_get_key_rejects_non_nodes():
    with pytest.raises(TypeError, match="42"):
        get_key(42)  # type: ignore[arg-type]


def test_get_key_of_a_cycle_raises_instead_of_hanging():
    a = Op(inc, 1)
    b = Op(inc, a)
    a.args = (b,)
    outcome: list[BaseException | str] = []

    def key_it():
        try:
            outcome.append(get_key(a))
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=key_it, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "get_key hangs on a cyclic graph"
    assert isinstance(outcome[0], ExecutorError)
    assert "cycle" in str(outcome[0])


def test_an_op_call_may_take_a_keyword_named_func() -> None:
    node = Op(sorted, [3, 1, 2], key=operator.neg)
    assert node.kwargs == {"key": operator.neg}
    func_kw = Op(dict, func=1)
    assert func_kw.func is dict and func_kw.kwargs == {"func": 1}
