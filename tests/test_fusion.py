"""Fusion: chains and blocks of short nodes run as one dask task, every node keeping its semantics.

The planning is tested without a cluster; every executor feature is tested with
fusion on (the default) against real scheduler and worker processes, on graphs
whose nodes really share a block (each test checks that they do).
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from real_cluster import Cluster, wait_until
from tasks import (
    add,
    boom,
    divide,
    fail_after_file,
    fail_first,
    identity,
    inc,
    kill_worker_once,
    record_call,
    retry_on_connection,
    wait_for_file,
)

from pydispatch import (
    Backoff,
    CancelledError,
    Client,
    CollectNode,
    DaskExecutor,
    DataNode,
    DependencyError,
    DispatcherError,
    Op,
    get_key,
)
from pydispatch.dask_adapter.blocks import Failure
from pydispatch.dask_adapter.fusion import (
    MIN_BLOCK,
    Durations,
    may_fuse,
    plan_groups,
)
from pydispatch.graph import DispatchNode
from pydispatch.plan import Plan

SHORT = {"inc": 1e-5, "add": 1e-5, "divide": 1e-5, "fail_first": 1e-5, "record_call": 1e-5}
"""Declared durations: these labels are short, so wide parts fuse too."""


def holder(node: DispatchNode) -> Any:
    """The dask future holding the node's result (its own task's, or its block's)."""
    return node.outcome.future  # type: ignore[union-attr]


def own_task(node: DispatchNode) -> bool:
    """The node keeps a dask task of its own: under its key, or under `KEY-guarded`
    when a block waits for it (its failure then reaches the block as data)."""
    return holder(node).key in (get_key(node), f"{get_key(node)}-guarded")


def same_block(*nodes: DispatchNode) -> bool:
    futures = {id(holder(n)) for n in nodes}
    return len(futures) == 1 and all(holder(n).key != get_key(n) for n in nodes)


@pytest.fixture
def executor(dask_cluster: Cluster) -> Iterator[DaskExecutor]:
    with DaskExecutor(dask_cluster.address, task_durations=SHORT) as ex:
        yield ex


# -- planning, without a cluster ----------------------------------------------


def plan_of(outputs: list[DispatchNode], durations: Durations, threads: int = 2) -> list[list[Any]]:
    plan = Plan.build(outputs)
    return plan_groups(plan.order, get_key, plan.dependencies, may_fuse, durations.of, threads)


def test_chains_fuse_even_when_durations_are_unknown() -> None:
    node: DispatchNode = Op(inc, 0)
    chain = [node]
    for _ in range(9):
        node = Op(inc, node)
        chain.append(node)
    assert plan_of([node], Durations()) == [chain]


def test_unknown_wide_nodes_keep_a_task_each_and_known_short_ones_fuse() -> None:
    leaves = [Op(inc, i) for i in range(100)]
    assert len(plan_of(leaves, Durations())) == 100
    groups = plan_of(leaves, Durations({"inc": 1e-5}))
    assert 1 <= len(groups) < 5
    assert sorted(id(n) for g in groups for n in g) == sorted(map(id, leaves))
    for seconds in (1.0, 0.02):
        assert len(plan_of(leaves, Durations({"inc": seconds}))) == 100


def add_tree(leaves: int) -> tuple[DispatchNode, list[DispatchNode]]:
    """A binary tree of additions over `leaves` leaves: its root, and all its nodes."""
    level: list[DispatchNode] = [Op(add, i, 1) for i in range(leaves)]
    every = list(level)
    while len(level) > 1:
        level = [Op(add, level[j], level[j + 1]) for j in range(0, len(level), 2)]
        every += level
    return level[0], every


def test_blocks_of_a_big_short_graph_keep_several_per_thread_and_stay_acyclic() -> None:
    root, every = add_tree(1024)
    seconds = MIN_BLOCK * 40 / len(every)  # 40 blocks' worth of work in all
    groups = plan_of([root], Durations({"add": seconds}), threads=2)
    assert 8 <= len(groups) <= 60
    group_of = {id(n): i for i, g in enumerate(groups) for n in g}
    assert len(group_of) == len(every)
    for i, group in enumerate(groups):
        for node in group:
            assert all(group_of[id(d)] <= i for d in node.dependencies())


def test_a_block_waiting_only_for_the_block_only_it_waits_for_joins_it() -> None:
    # a small tree: packed in depth-first order into blocks of MIN_BLOCK, the block
    # holding the root would only wait for the block before it: one block does both
    root, every = add_tree(256)
    seconds = MIN_BLOCK * 1.5 / len(every)  # one and a half blocks' worth of work
    assert [len(g) for g in plan_of([root], Durations({"add": seconds}))] == [len(every)]
    # a node waiting for two blocks (that run side by side) joins neither
    lefts: list[DispatchNode] = [Op(add, 0, 1)]
    rights: list[DispatchNode] = [Op(add, 2, 3)]
    for i in range(200):
        lefts.append(Op(add, lefts[-1], i))
        rights.append(Op(add, rights[-1], i))
    root = Op(add, lefts[-1], rights[-1])
    root.fuse = False  # type: ignore[attr-defined]
    groups = plan_of([root], Durations({"add": MIN_BLOCK * 0.9 / 200}))
    assert [len(g) for g in groups] == [201, 201, 1]


def test_one_predicate_decides_which_nodes_may_fuse() -> None:
    assert may_fuse(Op(inc, 1)) and may_fuse(DataNode(1))
    for name, value in [
        ("resources", {"GPU": 1}),
        ("priority", 0),
        ("workers", ["w"]),
        ("retries", 0),
        ("pure", False),
        ("key", "mine"),
        ("fuse", False),
    ]:
        node = Op(inc, 1)
        setattr(node, name, value)
        assert not may_fuse(node), name
    head = Op(inc, 0)
    head.fuse = False  # type: ignore[attr-defined]
    tail = Op(inc, Op(inc, head))
    assert [len(g) for g in plan_of([tail], Durations())] == [1, 2]


# -- every node's semantics, with fusion on, on real processes -----------------


def test_every_node_gets_its_result_intermediates_too(executor: DaskExecutor) -> None:
    leaves = [Op(add, i, 1) for i in range(64)]
    level: list[DispatchNode] = list(leaves)
    every = list(level)
    while len(level) > 1:
        level = [Op(add, level[j], level[j + 1]) for j in range(0, len(level), 2)]
        every += level
    (r,) = executor.run(level)
    assert r.unwrap().result() == sum(range(1, 65))
    assert [n.result() for n in leaves] == list(range(1, 65))
    assert len({id(holder(n)) for n in every}) < len(every) / 4  # fused into few tasks
    assert every[64].result() == 1 + 2  # an intermediate


def test_a_failure_inside_a_block_fails_only_it_and_its_dependents(
    executor: DaskExecutor,
) -> None:
    bad = Op(divide, 1, 0)
    dependent = Op(inc, bad)
    fine = [Op(inc, i) for i in range(10)]
    results = executor.run([dependent, *fine], throw_error=False)
    assert same_block(bad, dependent, *fine)
    assert results[0].is_error and not any(r.is_error for r in results[1:])
    assert [r.unwrap().result() for r in results[1:]] == list(range(1, 11))
    error = results[0].unwrap_error()
    assert error.node is dependent
    assert isinstance(error.err, DependencyError) and error.err.node is bad
    assert isinstance(error.root_cause, ZeroDivisionError)
    assert "in divide" in error.err.trace
    assert "'inc' did not run" in str(error) and "'divide' failed" in str(error)
    with pytest.raises(DependencyError) as info:
        bad.result()
    assert info.value.node is bad and isinstance(info.value.err, ZeroDivisionError)
    with pytest.raises(DependencyError) as info:
        dependent.result()
    assert info.value.failed_node is bad


def test_an_unfused_failure_fails_only_its_dependents_in_the_block_after_it(
    executor: DaskExecutor,
) -> None:
    bad = Op(divide, 1, 0)
    bad.fuse = False  # type: ignore[attr-defined]
    dependent = Op(inc, bad)
    fine = [Op(inc, i) for i in range(10)]
    after = Op(inc, Op(divide, 4, 2))  # a chain after an unfused node that succeeds
    results = executor.run([dependent, *fine, after], throw_error=False)
    assert own_task(bad) and same_block(dependent, *fine)
    assert results[0].is_error and not any(r.is_error for r in results[1:])
    assert [r.unwrap().result() for r in results[1:-1]] == list(range(1, 11))
    assert results[-1].unwrap().result() == 3.0
    error = results[0].unwrap_error()
    assert error.node is dependent and error.failed_node is bad
    assert isinstance(error.root_cause, ZeroDivisionError) and "in divide" in error.trace
    with pytest.raises(DependencyError) as info:
        bad.result()
    assert info.value.node is bad and isinstance(info.value.err, ZeroDivisionError)
    # a new run of the failed nodes runs them again (and fails again, alike)
    (again,) = executor.run([dependent], throw_error=False)
    assert again.unwrap_error().failed_node is bad


def test_throw_error_stops_at_the_first_failure(executor: DaskExecutor, tmp_path: Path) -> None:
    bad = Op(divide, 2, 0)
    after = Op(inc, Op(inc, bad))
    never = Op(wait_for_file, str(tmp_path / "never"), 1)  # would wait 60 s
    try:
        with pytest.raises(DependencyError) as info:
            executor.run([after, never], timeout=50)
        assert same_block(bad, after)
        assert info.value.node is bad and isinstance(info.value.err, ZeroDivisionError)
        with pytest.raises(CancelledError):
            never.result()
    finally:
        (tmp_path / "never").touch()  # frees the worker thread still running it


def test_retries_and_retry_on_act_per_node_inside_a_block(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    with DaskExecutor(
        dask_cluster.address,
        retries=3,
        retry_on=[retry_on_connection],
        backoff=Backoff(first=0.01),
        task_durations=SHORT,
    ) as ex:
        flaky = Op(fail_first, str(tmp_path / "flaky"), 2)
        wrong = Op(fail_first, str(tmp_path / "wrong"), 1, ValueError)
        others = [Op(inc, i) for i in range(5)]
        results = ex.run([flaky, wrong, *others], throw_error=False, timeout=60)
        assert same_block(flaky, wrong, *others)
        assert results[0].unwrap().result() == "ok after 3"
        assert isinstance(results[1].unwrap_error().err, ValueError)
        assert (tmp_path / "wrong").read_text() == "1"  # not retried: not a ConnectionError
        assert [r.unwrap().result() for r in results[2:]] == list(range(1, 6))


def test_progress_counts_nodes_not_blocks(executor: DaskExecutor) -> None:
    seen: list[tuple[str, bool]] = []

    class Recorder:
        def start(self, plan: Plan) -> None:
            pass

        def node_finished(self, node: DispatchNode, ok: bool) -> None:
            seen.append((node.label, ok))

        def finish(self) -> None:
            pass

    bad = Op(divide, 1, 0)
    nodes = [Op(inc, i) for i in range(20)]
    executor.run([Op(inc, bad), *nodes], throw_error=False, progress=Recorder())
    assert same_block(bad, *nodes)
    assert len(seen) == 22
    assert sorted(seen).count(("inc", True)) == 20
    assert ("divide", False) in seen and seen.count(("inc", False)) == 1


def test_input_map_and_inputs_cut_a_fused_chain(executor: DaskExecutor, tmp_path: Path) -> None:
    log = str(tmp_path / "calls")
    a = Op(record_call, log, 1)
    b = Op(inc, a)
    c = Op(inc, Op(inc, b))
    assert executor.run([c], input_map={b: 10})[0].unwrap().result() == 12
    assert not Path(log).exists()  # `a` was cut off
    executor.run([c])
    assert same_block(a, b, c)
    d = Op(add, b, 100)
    assert executor.run([d], inputs=[b])[0].unwrap().result() == 102
    assert Path(log).read_text().splitlines() == ["1"]


def test_content_keys_dedupe_fused_nodes_across_runs_and_clients(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    log = str(tmp_path / "calls")

    def graph() -> DispatchNode:
        return Op(inc, Op(inc, Op(record_call, log, 5)))

    first, second, third = graph(), graph(), graph()
    with DaskExecutor(dask_cluster.address) as a, DaskExecutor(dask_cluster.address) as b:
        assert a.run([first])[0].unwrap().result() == 7
        assert a.run([second])[0].unwrap().result() == 7
        assert b.run([third])[0].unwrap().result() == 7
        assert same_block(first, *first.dependencies())
        assert holder(first).key == holder(third).key
    assert Path(log).read_text().splitlines() == ["5"]


def test_cancel_reset_and_client_submit_with_fused_nodes(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")
    head = Op(inc, 1)
    slow = Op(wait_for_file, gate, head)
    after = Op(inc, slow)
    with Client(dask_cluster.address) as client:
        client.submit(after)
        assert same_block(head, slow, after)
        client.cancel([slow])
        for node in (slow, after):
            with pytest.raises(CancelledError, match="was cancelled"):
                client.result(node)
        assert head.result() == 2  # its block went; asked for, it runs again
        assert client.result(head) == 2
        Path(gate).touch()
        client.submit(after)
        assert client.result(after, timeout=60) == 3
    with DaskExecutor(dask_cluster.address) as ex:
        chain = Op(inc, Op(inc, 40))
        ex.run([chain])
        block = holder(chain).key
        assert block in dask_cluster.scheduler_keys()
        ex.reset()
        with pytest.raises(DispatcherError, match="gone"):
            chain.result()
        wait_until(lambda: block not in dask_cluster.scheduler_keys(), 30, "the block to go")
        assert ex.run([chain])[0].unwrap().result() == 42


def test_a_worker_killed_mid_block_reruns_the_block(
    own_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = own_cluster(2)
    worker_pids = {p.pid for p in cluster.workers}
    with DaskExecutor(cluster.address, connect_timeout=5) as ex:
        first = Op(inc, 1)
        killer = Op(kill_worker_once, str(tmp_path), first)
        last = Op(inc, killer)
        (r,) = ex.run([last], timeout=90)
        assert r.unwrap().result() == 3
        assert same_block(first, killer, last)
        assert first.result() == 2 and killer.result() == 2
        ran = {int(p.name.split("-")[1]) for p in tmp_path.glob("ran-*")}
        assert len(ran) == 2 and ran <= worker_pids  # killed in one worker, rerun in the other


def test_fuse_false_and_a_per_node_opt_out_keep_one_task_per_node(dask_cluster: Cluster) -> None:
    with DaskExecutor(dask_cluster.address, fuse=False) as ex:
        chain = Op(inc, Op(inc, 1))
        ex.run([chain])
        assert holder(chain).key == get_key(chain) and not ex.fuse
    with DaskExecutor(dask_cluster.address) as ex:
        head = Op(inc, 2)
        head.fuse = False  # type: ignore[attr-defined]
        tail = Op(inc, Op(inc, head))
        ex.run([tail])
        assert own_task(head) and same_block(tail, *tail.dependencies())


def test_durations_are_learned_then_wide_graphs_fuse(dask_cluster: Cluster) -> None:
    with DaskExecutor(dask_cluster.address) as ex:
        first = [Op(add, i, 7) for i in range(200)]
        ex.run(first)
        assert len({id(holder(n)) for n in first}) == 200  # unknown: a task each
        second = [Op(add, i, 8) for i in range(200)]
        results = ex.run(second)
        assert [r.unwrap().result() for r in results] == [i + 8 for i in range(200)]
        assert len({id(holder(n)) for n in second}) < 20
        assert ex.durations.of(second[0]) is not None


def test_reading_all_outputs_costs_one_gather(executor: DaskExecutor) -> None:
    dask = executor.client.dask_client
    calls: list[int] = []
    real = dask.gather

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    nodes = [Op(inc, i) for i in range(50)]
    nodes[0].fuse = False  # type: ignore[attr-defined]
    results = executor.run(nodes)
    dask.gather = counting  # type: ignore[method-assign]
    try:
        assert [r.unwrap().result() for r in results] == list(range(1, 51))
    finally:
        del dask.gather
    assert len({id(holder(n)) for n in nodes}) >= 2 and calls == [1]


# -- keep="outputs" -----------------------------------------------------------


def keys_in_memory(cluster: Cluster) -> set[str]:
    """The keys whose values the cluster holds."""
    import distributed

    def held(dask_scheduler: Any) -> list[str]:
        return [k for k, ts in dask_scheduler.tasks.items() if ts.state == "memory"]

    with distributed.Client(cluster.address, timeout=10, set_as_default=False) as c:
        return set(c.run_on_scheduler(held))


def test_keep_outputs_leaves_only_the_outputs_on_the_scheduler(
    own_cluster: Callable[..., Cluster],
) -> None:
    cluster = own_cluster(2)
    outputs: list[DispatchNode] = []
    with DaskExecutor(cluster.address, keep="outputs") as ex:
        for run in range(1, 21):
            leaves = [Op(operator.add, i, run) for i in range(998)]
            total = Op(sum, CollectNode(leaves))
            (result,) = ex.run([total], timeout=120)
            assert result.unwrap().result() == sum(range(998)) + 998 * run
            outputs.append(total)
        with pytest.raises(DispatcherError, match="keep='outputs'"):
            leaves[0].result()
        wanted = {holder(o).key for o in outputs}
        # dask remembers released dependencies of kept keys (lineage) but holds no data
        wait_until(
            lambda: keys_in_memory(cluster) == wanted,
            30,
            "the scheduler to keep only the outputs of the 20 runs",
        )
        assert [o.result() for o in outputs] == [
            sum(range(998)) + 998 * run for run in range(1, 21)
        ]
        kept = Op(inc, Op(inc, 0))
        ex.run([kept], keep="all")
        assert kept.dependencies()[0].result() == 1


def test_keep_outputs_drops_an_intermediate_once_its_dependents_are_done(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    import concurrent.futures

    gate = str(tmp_path / "gate")
    with DaskExecutor(dask_cluster.address) as ex:
        earlier = Op(inc, 1000)
        ex.run([earlier])  # an earlier run's output, reused below: it stays
        inter = Op(add, earlier, 1)
        inter.fuse = False  # type: ignore[attr-defined]
        user = Op(inc, inter)
        user.fuse = False  # type: ignore[attr-defined]
        blocker = Op(wait_for_file, gate, 0)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(ex.run, [user, blocker], keep="outputs", timeout=60)
            try:
                wait_until(
                    lambda: (
                        get_key(user) in keys_in_memory(dask_cluster)
                        and get_key(inter) not in keys_in_memory(dask_cluster)
                    ),
                    30,
                    "the intermediate to go while the run still waits for the blocker",
                )
                assert not running.done()
            finally:
                Path(gate).touch()
            results = running.result(timeout=60)
        assert [r.unwrap().result() for r in results] == [1003, 0]
        assert earlier.result() == 1001
        with pytest.raises(DispatcherError, match="not kept"):
            inter.result()


# -- the transfer check of values ------------------------------------------------


class Counted(list):  # type: ignore[type-arg]
    """A list that counts how often it is pickled."""

    pickled = 0

    def __reduce_ex__(self, protocol: Any) -> Any:
        Counted.pickled += 1
        return (Counted, (list(self),))


def test_large_values_are_checked_once_per_function_and_type() -> None:
    import threading

    from pydispatch.dask_adapter.transfer import check_transferable
    from pydispatch.errors import UnpicklableResultError

    big = Counted(range(2**18))  # several MB, by dask's sizeof
    Counted.pickled = 0
    assert check_transferable(big, "make_big") is big
    assert check_transferable(Counted(range(2**18)), "make_big") is not None
    assert Counted.pickled == 1
    small = Counted([1])
    check_transferable(small, "make_small")
    check_transferable(small, "make_small")
    assert Counted.pickled == 3  # small values are checked every time
    with pytest.raises(UnpicklableResultError, match="make_lock"):
        check_transferable([threading.Lock()], "make_lock")


def test_block_timings_teach_durations_so_the_next_wide_graph_fuses_at_once(
    dask_cluster: Cluster,
) -> None:
    with DaskExecutor(dask_cluster.address) as ex:
        chain: DispatchNode = Op(inc, 0)
        for _ in range(30):
            chain = Op(inc, chain)
        assert ex.durations.of(chain) is None
        assert ex.run([chain])[0].unwrap().result() == 31  # reading it brings the timings
        assert ex.durations.of(chain) is not None
        wide = [Op(inc, i) for i in range(300)]
        ex.run(wide)
        assert len({id(holder(n)) for n in wide}) < 20


def test_bad_fuse_and_keep_values_are_refused_quoting_them() -> None:
    with pytest.raises(ValueError, match="'some'"):
        DaskExecutor("127.0.0.1:1", keep="some")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'yes'"):
        DaskExecutor("127.0.0.1:1", fuse="yes")  # type: ignore[arg-type]


def test_nodes_waiting_for_an_unfinished_earlier_task_are_not_packed_with_others(
    executor: DaskExecutor, tmp_path: Path
) -> None:
    # `late` runs from an earlier update and fails once the gate opens. Packed into one
    # block with a node that waits for it, the gate opener (and every other node of the
    # block) would wait for `late`, and then get its error.
    gate = str(tmp_path / "gate")
    late = Op(fail_after_file, gate)
    executor.dispatch(late)
    others = [Op(inc, i) for i in range(30)]
    opener = Op(record_call, gate, 1)
    dependent = Op(inc, Op(inc, late))
    results = executor.run([*others, opener, dependent], throw_error=False, timeout=60)
    assert [r.unwrap().result() for r in results[:-1]] == [*range(1, 31), 1]
    error = results[-1].unwrap_error()
    assert isinstance(error, DependencyError)
    assert "failed after the gate opened" in str(error.root_cause)


def test_keep_outputs_reports_a_fused_intermediates_own_failure(executor: DaskExecutor) -> None:
    failing = Op(boom, 3)
    output = Op(inc, failing)  # a chain: one block, which keeps only the output's value
    (result,) = executor.run([output], throw_error=False, keep="outputs")
    assert output.outcome.fused  # type: ignore[union-attr]
    error = result.unwrap_error()
    assert isinstance(error, DependencyError) and error.failed_node is failing
    assert isinstance(error.root_cause, ValueError) and str(error.root_cause) == "bad 3"
    assert "in boom" in error.trace
    with pytest.raises(DependencyError, match="bad 4") as raised:
        executor.run([Op(inc, Op(boom, 4))], keep="outputs")
    assert str(raised.value.root_cause) == "bad 4"


def test_a_guarded_task_never_hands_its_failure_to_another_client_as_a_value(
    executor: DaskExecutor, dask_cluster: Cluster, tmp_path: Path
) -> None:
    # `failing` keeps a task of its own (no duration known) that a block waits for, so
    # its failure travels to the block as data. Another client asking for the same
    # node must still see a failure, not that data.
    tag = str(tmp_path)  # keys of this test only
    failing = Op(boom, tag)
    xs = [Op(inc, i) for i in range(10)]
    results = executor.run([Op(add, failing, xs[0]), Op(add, *xs)], throw_error=False)
    assert results[1].unwrap().result() == sum(range(1, 11))
    assert holder(failing).type is Failure, "the scenario needs a guarded task"
    with DaskExecutor(dask_cluster.address) as other:
        same = Op(boom, tag)
        outputs = [Op(identity, same), Op(str, same)]  # two dependents: `same` unfused
        for result in other.run(outputs, throw_error=False):
            error = result.unwrap_error()
            assert isinstance(error, DependencyError)
            assert str(error.root_cause) == f"bad {tag}"


@pytest.mark.parametrize("fuse", [True, False])
def test_a_concurrent_run_can_use_what_a_keep_outputs_run_does_not_keep(
    dask_cluster: Cluster, tmp_path: Path, fuse: bool
) -> None:
    # Run A (keep="outputs") holds `x` only as an intermediate: fused, its block keeps
    # only the output's value; unfused, A releases `x` when it ends. Run B, submitted
    # while A runs, needs an identical `x`: it must get its value all the same.
    gate = str(tmp_path / "gate")
    x_a = Op(wait_for_file, gate, 5)
    out_a = Op(inc, x_a)
    x_b = Op(wait_for_file, gate, 5)
    out_b = Op(operator.mul, x_b, 2)
    runs: dict[str, Any] = {}
    with DaskExecutor(dask_cluster.address, fuse=fuse) as ex:

        def run(name: str, outputs: list[DispatchNode], keep: str) -> None:
            try:
                runs[name] = ex.run(outputs, throw_error=False, keep=keep, timeout=60)
            except BaseException as err:
                runs[name] = err

        a = threading.Thread(target=run, args=("a", [out_a], "outputs"))
        b = threading.Thread(target=run, args=("b", [out_b, x_b], "all"))
        try:
            a.start()
            wait_until(lambda: out_a.outcome is not None, 60, "run A to submit")
            b.start()
            wait_until(lambda: out_b.outcome is not None, 60, "run B to submit")
        finally:
            Path(gate).touch()
            a.join(60)
            b.join(60)
        assert [r.unwrap().result() for r in runs["a"]] == [6]
        assert [r.unwrap().result() for r in runs["b"]] == [10, 5]
        assert x_b.result() == 5  # still held after A ended and released its intermediates
