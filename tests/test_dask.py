"""DaskExecutor, Client and Worker against a real `dask scheduler` and worker processes."""

from __future__ import annotations

import math
import operator
import os
import random
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from real_cluster import Cluster, free_port, wait_until
from tasks import (
    divide,
    factorials,
    fail,
    fail_first,
    half,
    record_call,
    retry_on_connection,
    slowadd,
    slowinc,
    slowsum,
    three,
    wait_for_file,
    where_am_i,
)

from pydispatch import (
    Backoff,
    CancelledError,
    Client,
    CollectNode,
    DaskExecutor,
    DependencyError,
    DispatcherError,
    DispatchGraph,
    NoWorkerWarning,
    Op,
    RunTimeoutError,
    SchedulerUnreachableError,
    Worker,
    get_key,
)


@pytest.fixture
def executor(dask_cluster: Cluster):
    with DaskExecutor(dask_cluster.address) as ex:
        yield ex


def test_seed_quick_start_max(executor: DaskExecutor) -> None:
    a = Op(three)
    b = Op(int, 4)
    c = Op(max, a, b)
    results = executor.run(DispatchGraph(c))
    assert len(results) == 1
    assert results[0].unwrap() is c
    assert c.result() == 4


def test_dispatcher_example_graph(executor: DaskExecutor) -> None:
    c = Op(max, Op(three), 4)
    e = Op(factorials, c)
    f, g = e[0], e[1]
    h = Op(half, g)
    (result,) = executor.run([h])
    assert result.unwrap().result() == 20160.0
    assert e.result() == (24, math.factorial(8))
    assert not f.done()


def test_do_example_with_an_in_process_worker(scheduler_only: Cluster) -> None:
    with Worker(scheduler_only.address, nthreads=2) as worker:
        assert worker.address.startswith("tcp://127.0.0.1:")
        data = [1, 2, 3]
        A = [Op(slowinc, i) for i in data]
        B = [Op(slowadd, a, 10) for a in A]
        C = [Op(slowadd, a, 100) for a in A]
        result = Op(slowsum, Op(slowsum, *A), Op(slowsum, *B), Op(slowsum, *C))
        with DaskExecutor(scheduler_only.address) as ex:
            (r,) = ex.run([result], timeout=60)
            assert r.unwrap().result() == 357
    assert scheduler_only.worker_count() == 0


def test_cluster_example_with_collect_node(executor: DaskExecutor) -> None:
    rng = random.Random(7)
    data = [Op(slowinc, d) for d in range(100)]
    reference = Op(slowinc, -1)
    processed = [Op(slowadd, d, reference) for d in data]
    rolled = [Op(slowsum, processed[i], processed[i + 1], processed[i + 2]) for i in range(98)]
    compared = [Op(operator.sub, rng.choice(rolled), rng.choice(rolled)) for _ in range(200)]
    best = Op(sum, CollectNode(compared))
    (r,) = executor.run([best], timeout=120)
    expected = sum(c.args[0].result() - c.args[1].result() for c in compared)
    assert r.unwrap().result() == expected
    assert len(DispatchGraph(best)) > 490


def test_results_stay_until_asked_and_failures_nest(executor: DaskExecutor) -> None:
    bad = Op(divide, 1, 0)
    dependent = Op(half, bad)
    fine = Op(half, 8)
    results = executor.run([dependent, fine], throw_error=False)
    assert [r.is_error for r in results] == [True, False]
    error = results[0].unwrap_error()
    assert error.node is dependent
    assert isinstance(error.err, DependencyError) and error.err.node is bad
    assert isinstance(error.root_cause, ZeroDivisionError)
    assert "in divide" in error.err.trace
    assert "'half' did not run" in str(error) and "'divide' failed" in str(error)
    with pytest.raises(DependencyError) as info:
        bad.result()
    assert isinstance(info.value.err, ZeroDivisionError)
    assert fine.result() == 4.0


def test_throw_error_raises_the_failing_node(executor: DaskExecutor) -> None:
    bad = Op(divide, 2, 0)
    with pytest.raises(DependencyError) as info:
        executor.run([Op(half, bad)])
    assert info.value.node is bad
    assert isinstance(info.value.err, ZeroDivisionError)


def test_retry_on_retries_on_the_worker(
    executor: DaskExecutor, tmp_path: Path, dask_cluster: Cluster
) -> None:
    # the predicate runs on the worker: what it decided shows in how often the task ran
    with DaskExecutor(
        dask_cluster.address, retries=3, retry_on=[retry_on_connection], backoff=Backoff(first=0.01)
    ) as ex:
        node = Op(fail_first, str(tmp_path / "count"), 2)
        (r,) = ex.run([node], timeout=60)
        assert r.unwrap().result() == "ok after 3"
    with DaskExecutor(dask_cluster.address, retries=1, retry_on=[retry_on_connection]) as ex:
        node = Op(fail_first, str(tmp_path / "count2"), 5)
        with pytest.raises(DependencyError) as info:
            ex.run([node], timeout=60)
        assert isinstance(info.value.err, ConnectionError)
        assert (tmp_path / "count2").read_text() == "2"
    node = Op(fail_first, str(tmp_path / "count3"), 1, ValueError)
    with DaskExecutor(dask_cluster.address, retries=3, retry_on=[retry_on_connection]) as ex:
        with pytest.raises(DependencyError, match="attempt 1 fails"):
            ex.run([node], timeout=60)
    assert (tmp_path / "count3").read_text() == "1"


def test_running_a_failed_node_again_runs_it_again(executor: DaskExecutor, tmp_path: Path) -> None:
    node = Op(fail_first, str(tmp_path / "count"), 1)
    (first,) = executor.run([node], throw_error=False)
    assert isinstance(first.unwrap_error().err, ConnectionError)
    (second,) = executor.run([node], throw_error=False)
    assert second.unwrap().result() == "ok after 2"


def test_runs_from_several_threads_share_one_executor(executor: DaskExecutor) -> None:
    outcomes: dict[int, object] = {}

    def run(i: int) -> None:
        chain = Op(slowinc, i * 1000)
        for _ in range(20):
            chain = Op(slowinc, chain)
        (r,) = executor.run([chain], timeout=120)
        outcomes[i] = r.unwrap().result()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert outcomes == {i: i * 1000 + 21 for i in range(4)}


def test_a_run_that_stops_early_leaves_others_work_running(
    executor: DaskExecutor, tmp_path: Path
) -> None:
    # `shared` runs for a dispatch; two runs reuse it and stop early (a failure with
    # throw_error, a timeout). They cancel what they started, not what they reused.
    gate = str(tmp_path / "gate")
    shared = Op(wait_for_file, gate, 7)
    dispatched = executor.dispatch(shared)
    with pytest.raises(DependencyError, match="early"):
        executor.run([Op(fail, "early"), Op(operator.neg, shared)])
    with pytest.raises(RunTimeoutError):
        executor.run([Op(operator.pos, shared)], timeout=1)
    Path(gate).touch()
    assert dispatched.result(timeout=60) == 7
    assert shared.result() == 7


def test_a_node_cancelled_during_a_run_is_reported_as_cancelled(
    executor: DaskExecutor, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")
    held = Op(wait_for_file, gate, 1)
    output = Op(operator.neg, held)

    def cancel_once_submitted() -> None:
        try:
            wait_until(lambda: output.outcome is not None, 60, "the run to submit its nodes")
            executor.client.cancel([held])
        finally:
            Path(gate).touch()  # whatever happened, the run can end

    canceller = threading.Thread(target=cancel_once_submitted)
    canceller.start()
    try:
        (result,) = executor.run([output], throw_error=False, timeout=60)
    finally:
        canceller.join(60)
    error = result.unwrap_error()  # not a success whose value is gone
    assert isinstance(error, DependencyError)
    assert isinstance(error.root_cause, CancelledError)
    assert "cancel()" in str(error.root_cause)


def test_identical_nodes_share_a_key_across_clients(dask_cluster: Cluster, tmp_path: Path) -> None:
    log = str(tmp_path / "calls")
    first = Op(record_call, log, 5)
    twin = Op(record_call, log, 5)
    assert get_key(first) == get_key(twin)
    assert get_key(first).startswith("record_call-")
    with Client(dask_cluster.address) as a, Client(dask_cluster.address) as b:
        a.submit(first)
        assert a.result(first) == 5
        assert b.gather([twin]) == [5]
        assert a.id != b.id and a.status == b.status == "running"
    assert Path(log).read_text().splitlines() == ["5"]


def test_impure_nodes_run_again(dask_cluster: Cluster, tmp_path: Path) -> None:
    log = str(tmp_path / "calls")
    node = Op(record_call, log, 1)
    node.pure = False
    with DaskExecutor(dask_cluster.address) as ex:
        ex.run([node])
        ex.run([node])
    assert Path(log).read_text().splitlines() == ["1", "1"]
    keyed = Op(record_call, log, 2)
    keyed.key = "my-explicit-key"
    assert get_key(keyed) == "my-explicit-key"


def test_placement_restricts_only_the_node(dask_cluster: Cluster) -> None:
    addresses = dask_cluster.worker_addresses()
    assert len(addresses) == 2
    with Client(dask_cluster.address) as client:
        for address in addresses:
            here = Op(where_am_i, Op(str, address))
            client.submit(here, workers=[address])
            assert client.result(here, timeout=60) == address
        with pytest.raises(ValueError, match=r"no worker at tcp://127\.0\.0\.1:1 "):
            client.submit(Op(where_am_i), workers=["127.0.0.1:1"])


def test_replicate_survives_the_memory_manager(dask_cluster: Cluster) -> None:
    node = Op(slowinc, 41)
    with Client(dask_cluster.address) as client:
        client.submit(node)
        assert client.result(node) == 42
        client.replicate([node])
        key = get_key(node)
        dask = client.dask_client

        def everywhere() -> bool:
            return sum(key in keys for keys in dask.has_what().values()) == 2

        wait_until(everywhere, 30, "two replicas")
        # The memory manager's policies, asked directly: dask's own ReduceReplicas
        # would drop the copy; the one pydispatch installed does not.

        def drop_suggestions(dask_scheduler: Any, key: str) -> tuple[list[str], list[str]]:
            """Keys the stock ReduceReplicas policy, and the installed ones, would drop now."""
            from distributed.active_memory_manager import ReduceReplicas

            amm = dask_scheduler.extensions["amm"]
            stock = ReduceReplicas()
            stock.manager = amm
            installed = [p for p in amm.policies if isinstance(p, ReduceReplicas)]
            amm.pending = {}  # what a real pass of the memory manager starts from
            try:
                return (
                    [s.ts.key for s in stock.run() if s.ts.key == key],
                    [s.ts.key for p in installed for s in p.run() if s.ts.key == key],
                )
            finally:
                del amm.pending

        stock, ours = dask.run_on_scheduler(drop_suggestions, key=key)
        assert stock == [key] and ours == []
        dask.amm.run_once()
        # run_once acts in the background: watch (bounded) that no copy goes.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert everywhere(), "the memory manager dropped a replicated key"
            time.sleep(0.2)


def test_cancel_forgets_node_and_dependents(dask_cluster: Cluster, tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")
    slow = Op(wait_for_file, gate, 1)
    after = Op(slowinc, slow)
    other = Op(slowinc, 100)
    with Client(dask_cluster.address) as client:
        client.submit(after)
        client.submit(other)
        assert get_key(slow) in client.keys and get_key(after) in client.keys
        client.cancel([slow])
        start = time.monotonic()
        for node in (slow, after):
            with pytest.raises(CancelledError, match="was cancelled"):
                client.result(node)
            with pytest.raises(CancelledError):
                client.gather([node])
        assert time.monotonic() - start < 5
        assert get_key(slow) not in client.keys and get_key(after) not in client.keys
        assert client.result(other) == 101
        Path(gate).touch()
        client.submit(after)
        assert client.result(after, timeout=60) == 2


def test_reset_leaves_no_keys_and_executor_stays_usable(
    executor: DaskExecutor, dask_cluster: Cluster
) -> None:
    nodes = [Op(slowadd, i, 1000) for i in range(20)]
    executor.run(nodes)
    ours = {get_key(n) for n in nodes}
    assert ours <= dask_cluster.scheduler_keys()
    executor.reset()
    wait_until(
        lambda: not ours & dask_cluster.scheduler_keys(), 30, "the scheduler to forget our keys"
    )
    (r,) = executor.run([Op(slowadd, 1, 1)])
    assert r.unwrap().result() == 2


def test_shutdown_twice_and_submit_after_raise(dask_cluster: Cluster) -> None:
    client = Client(dask_cluster.address)
    node = Op(slowinc, 7)
    client.submit(node)
    assert node.result() == 8
    client.shutdown()
    with pytest.raises(DispatcherError, match="'slowinc' is gone"):
        node.result()
    assert client.status == "closed"
    with pytest.raises(DispatcherError, match="already shut down"):
        client.shutdown()
    with pytest.raises(DispatcherError, match="create a new Client"):
        client.submit(Op(slowinc, 1))


def test_unreachable_scheduler_fails_fast_and_says_what_to_do() -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(SchedulerUnreachableError) as info:
        DaskExecutor(f"127.0.0.1:{port}", connect_timeout=2)
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert f"tcp://127.0.0.1:{port}" in message
    assert "dask scheduler" in message and "DaskExecutor.local()" in message


def test_no_worker_times_out_saying_so(scheduler_only: Cluster) -> None:
    with DaskExecutor(scheduler_only.address) as ex:
        with (
            pytest.warns(NoWorkerWarning, match="pydispatch worker"),
            pytest.raises(RunTimeoutError, match="no worker is connected"),
        ):
            ex.run([Op(slowinc, 1)], timeout=3)


def test_no_worker_warns_then_runs_when_one_joins(scheduler_only: Cluster) -> None:
    with warnings.catch_warnings(record=True) as caught, DaskExecutor(scheduler_only.address) as ex:
        warnings.simplefilter("always")
        joined = threading.Event()

        def add_worker_after_warning() -> None:
            wait_until(
                lambda: any(w.category is NoWorkerWarning for w in caught), 30, "the warning"
            )
            scheduler_only.add_worker()
            joined.set()

        helper = threading.Thread(target=add_worker_after_warning)
        helper.start()
        (r,) = ex.run([Op(slowinc, 1)], timeout=90)
        helper.join(60)
        assert r.unwrap().result() == 2
    assert joined.is_set()
    messages = [str(w.message) for w in caught if w.category is NoWorkerWarning]
    assert len(messages) == 1 and "pydispatch worker" in messages[0]


def test_ship_functions_never_fails_for_unimportable_functions(dask_cluster: Cluster) -> None:
    with DaskExecutor(dask_cluster.address, ship_functions="never") as ex:
        with pytest.raises(DependencyError) as info:
            ex.run([Op(slowinc, 1)], timeout=60)
    assert "deserialization of the task graph" in str(info.value.root_cause)


def test_local_executor_runs_worker_processes() -> None:
    with DaskExecutor.local(n_workers=1, threads_per_worker=1) as ex:
        assert ex.scheduler_address.startswith("tcp://127.0.0.1:")
        (r,) = ex.run([Op(where_am_i)], timeout=60)
        worker_address = r.unwrap().result()
        assert worker_address.startswith("tcp://127.0.0.1:")
        pids = ex.client.dask_client.run(os.getpid)
        assert os.getpid() not in pids.values()
        cluster = ex._cluster
    assert cluster is not None and cluster.status.name == "closed"


def test_local_accepts_every_executor_option() -> None:
    import inspect

    own = set(inspect.signature(DaskExecutor.__init__).parameters) - {
        "self",
        "scheduler_address",
        "scheduler_file",
        "security",  # the embedded cluster makes its own (secure=True)
    }
    assert own <= set(inspect.signature(DaskExecutor.local).parameters)
