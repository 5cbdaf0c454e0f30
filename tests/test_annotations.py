"""Per-node dask annotations (resources, priority, workers, retries) on real workers."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_cluster import Cluster

from pydispatch import DaskExecutor, ExecutorError, Op, annotate, op


def where() -> str:
    """The address of the worker running this task."""
    from distributed import get_worker

    return str(get_worker().address)


def stamp(i: int) -> int:
    """When this task ran (monotonic ns: one worker process, so comparable)."""
    time.sleep(0.01)
    return time.monotonic_ns()


def wait_for_file(path: str) -> int:
    """Hold the worker's only thread until `path` exists (bounded)."""
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return 0


def flaky(path: str) -> str:
    """Fail the first two calls (counted in `path`), then succeed."""
    count = int(Path(path).read_text()) if os.path.exists(path) else 0
    Path(path).write_text(str(count + 1))
    if count < 2:
        raise RuntimeError(f"flaky call {count}")
    return f"ok after {count} failures"


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[Cluster]:
    """Two workers; only the second has the resource GPU=1."""
    from real_cluster import start_cluster

    cluster = start_cluster(1)
    cluster.add_worker(1, "--resources", "GPU=1")
    yield cluster
    cluster.stop()


def gpu_worker(cluster: Cluster) -> str:
    workers = cluster.client.scheduler_info(n_workers=-1)["workers"]
    (address,) = [a for a, w in workers.items() if w.get("resources", {}).get("GPU")]
    return address


def test_a_resource_restricted_node_runs_only_where_the_resource_is(gpu_cluster):
    with DaskExecutor(gpu_cluster.address) as ex:
        nodes = [Op(where) for _ in range(6)]
        for node in nodes:
            node.pure = False  # six separate tasks
            node.resources = {"GPU": 1}
        ex.run(nodes)
        assert {n.result() for n in nodes} == {gpu_worker(gpu_cluster)}


def test_annotate_block_and_op_decorator_set_node_attributes():
    @op(resources={"GPU": 1}, priority=3)
    def gpu_task(x: int) -> int:
        return x

    with annotate(priority=7, retries=2):
        inside = Op(abs, -1)
        with annotate(workers="tcp://127.0.0.1:1"):
            nested = Op(abs, -2)
    outside = Op(abs, -3)
    assert gpu_task(1).annotations() == {"resources": {"GPU": 1}, "priority": 3}
    assert inside.annotations() == {"priority": 7, "retries": 2}
    assert nested.annotations() == {
        "priority": 7,
        "retries": 2,
        "workers": ["tcp://127.0.0.1:1"],
    }
    assert outside.annotations() == {}
    assert Op(dict, resources=1).kwargs == {"resources": 1}  # Op keywords are the function's
    with pytest.raises(TypeError, match="resources must be a dict"):
        with annotate(resources=["GPU"]):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="retries must be an int >= 0"):
        op(retries=-1)(abs)


def test_resource_annotation_via_op_decorator_reaches_dask(gpu_cluster):
    @op(resources={"GPU": 1}, pure=False)
    def where_gpu() -> str:
        return where()

    with DaskExecutor(gpu_cluster.address) as ex:
        nodes = [where_gpu() for _ in range(4)]
        ex.run(nodes)
        assert {n.result() for n in nodes} == {gpu_worker(gpu_cluster)}


def test_a_node_no_worker_can_run_fails_at_once_saying_what_to_start(gpu_cluster):
    with DaskExecutor(gpu_cluster.address) as ex:
        node = Op(abs, -1)
        node.resources = {"TPU": 1}
        started = time.monotonic()
        with pytest.raises(ExecutorError) as info:
            ex.run([node], timeout=30)
        assert time.monotonic() - started < 10
        message = str(info.value)
        assert "TPU" in message and "GPU" in message and "--resources" in message
        elsewhere = Op(abs, -2)
        elsewhere.workers = ["tcp://127.0.0.1:9"]
        with pytest.raises(ExecutorError, match=re.escape("tcp://127.0.0.1:9")):
            ex.run([elsewhere], timeout=30)


def test_placement_is_honoured(dask_cluster):
    target = dask_cluster.worker_addresses()[1]
    with DaskExecutor(dask_cluster.address) as ex:
        with annotate(workers=target):
            nodes = [Op(where) for _ in range(6)]
        for node in nodes:
            node.pure = False
        ex.run(nodes)
        assert {n.result() for n in nodes} == {target}


def test_priorities_order_queued_work(own_cluster, tmp_path):
    cluster = own_cluster(1)  # one worker, one thread: everything else queues behind
    gate = str(tmp_path / "open")
    with DaskExecutor(cluster.address) as ex:
        blocker = Op(wait_for_file, gate)
        blocker.pure = False
        low = [Op(stamp, i) for i in range(4)]
        high = [Op(stamp, 100 + i) for i in range(4)]
        for node in low:
            node.priority = -10
        for node in high:
            node.priority = 10
        client = ex.client.dask_client
        (blocker_future,) = ex.client.submit_plan(_plan([blocker]))[1].values()
        # the blocker holds the only thread; the rest is submitted behind it
        import threading

        runner = threading.Thread(target=ex.run, args=(low + high,))
        runner.start()
        _wait_queued(client, len(low) + len(high))
        Path(gate).touch()
        runner.join(60)
        assert not runner.is_alive()
        assert blocker_future.result(timeout=30) == 0
        assert max(n.result() for n in high) < min(n.result() for n in low)


def _plan(nodes):
    from pydispatch.plan import Plan

    return Plan.build(nodes)


def _wait_queued(client, count: int) -> None:
    from real_cluster import wait_until

    def queued() -> bool:
        states = client.run_on_scheduler(
            lambda dask_scheduler: [ts.state for ts in dask_scheduler.tasks.values()]
        )
        return sum(s in ("queued", "processing", "no-worker") for s in states) >= count + 1

    wait_until(queued, 30, f"{count} tasks queued behind the blocker")


def test_plain_retries_use_dask_retries(dask_cluster, tmp_path):
    counter = str(tmp_path / "count")
    with DaskExecutor(dask_cluster.address) as ex:  # retries=0: only dask retries
        node = Op(flaky, counter)
        node.retries = 2
        (result,) = ex.run([node])
        assert result.unwrap().result() == "ok after 2 failures"
        again = Op(flaky, str(tmp_path / "other"))
        again.retries = 1
        (failed,) = ex.run([again], throw_error=False)
        assert failed.is_error and "flaky call 1" in str(failed.error)
