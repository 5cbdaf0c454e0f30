"""Faults against real processes: each ends in a result or a clear error within a bound.

Tasks signal through files in a temporary folder (they run in other processes):
they write their worker's PID when they start, and wait (boundedly) for a
"go" file the test creates.
"""

from __future__ import annotations

import concurrent.futures
import gc
import operator
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from real_cluster import Cluster, wait_until

from pydispatch import (
    Client,
    CollectNode,
    DaskExecutor,
    DependencyError,
    Op,
    SchedulerLostError,
    UnpicklableResultError,
    get_key,
)

GO_WAIT = 60.0
"""Seconds a task waits for its "go" file before going on anyway."""


# -- task functions (shipped by value: workers cannot import this module) -----


def wait_then_return(folder: str, value: int) -> int:
    """Record this worker's PID, wait for the test's "go", return `value`."""
    Path(folder, f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + GO_WAIT
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def kill_my_worker(folder: str) -> int:
    """Kill the worker running this task, every time (after the test's "go")."""
    Path(folder, f"killer-{os.getpid()}").touch()
    deadline = time.monotonic() + GO_WAIT
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0  # pragma: no cover


def plus_one(x: int) -> int:
    return x + 1


def make_lock() -> threading.Lock:
    return threading.Lock()


def lock_is_free(lock: threading.Lock) -> bool:
    return not lock.locked()


def worker_address(*_: object) -> str:
    import distributed

    return str(distributed.get_worker().address)


# -- helpers --------------------------------------------------------------------


@pytest.fixture
def background() -> Iterator[Callable[..., concurrent.futures.Future[object]]]:
    """Run a call (a blocking `run`) in a thread, so the test can act meanwhile."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    yield pool.submit
    pool.shutdown(wait=False, cancel_futures=True)


def pids_started(folder: Path, prefix: str = "started") -> set[int]:
    return {int(p.name.rsplit("-", 1)[1]) for p in folder.glob(f"{prefix}-*")}


def scheduler_states(cluster: Cluster, keys: list[str]) -> dict[str, str | None]:
    def states(dask_scheduler, keys):  # type: ignore[no-untyped-def]
        tasks = dask_scheduler.tasks
        return {k: (tasks[k].state if k in tasks else None) for k in keys}

    import distributed

    with distributed.Client(cluster.address, timeout=10, set_as_default=False) as c:
        return dict(c.run_on_scheduler(states, keys=keys))


# -- a worker killed once, mid-task ---------------------------------------------


def test_worker_killed_once_mid_task_run_still_returns_correct_results(
    own_cluster: Callable[..., Cluster],
    tmp_path: Path,
    background: Callable[..., concurrent.futures.Future[object]],
) -> None:
    cluster = own_cluster(2)
    worker_pids = {p.pid for p in cluster.workers}
    with DaskExecutor(cluster.address, connect_timeout=5) as ex:
        slow = Op(wait_then_return, str(tmp_path), 40)
        others = [Op(operator.add, i, i) for i in range(20)]
        total = Op(operator.add, slow, Op(sum, CollectNode(others)))
        running = background(ex.run, [total], timeout=90)
        wait_until(lambda: pids_started(tmp_path), 30, "the slow task to start")
        (victim,) = pids_started(tmp_path)
        assert victim in worker_pids, "the task did not run in one of the worker processes"
        os.kill(victim, signal.SIGKILL)
        Path(tmp_path, "go").touch()
        (result,) = running.result(timeout=90)  # type: ignore[misc]
        assert result.unwrap().result() == 40 + sum(2 * i for i in range(20))
        # dask ran the task again, in the other worker
        assert len(pids_started(tmp_path) - {victim}) == 1
        assert (pids_started(tmp_path) - {victim}) <= worker_pids


# -- a task that kills every worker that runs it --------------------------------


@pytest.mark.slow
def test_task_that_kills_its_worker_fails_alone_after_allowed_failures(
    own_cluster: Callable[..., Cluster],
    tmp_path: Path,
    background: Callable[..., concurrent.futures.Future[object]],
) -> None:
    # allowed-failures=1: the second worker death while running it makes dask give up
    cluster = own_cluster(0, env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    for _ in range(3):
        cluster.add_worker(2)
    killer = Op(kill_my_worker, str(tmp_path))
    dependent = Op(plus_one, killer)
    second = Op(plus_one, dependent)
    unrelated = [Op(operator.mul, i, 10) for i in range(6)]
    with DaskExecutor(cluster.address, connect_timeout=5) as ex:
        started = time.monotonic()
        running = background(ex.run, [second, *unrelated], throw_error=False, timeout=120)
        # let the unrelated nodes finish before the first death, so no death catches
        # them twice (that would be dask's KilledWorker for them too)
        keys = [get_key(n) for n in unrelated]
        wait_until(
            lambda: set(scheduler_states(cluster, keys).values()) == {"memory"},
            60,
            "the unrelated nodes to finish",
        )
        wait_until(lambda: pids_started(tmp_path, "killer"), 30, "the killer task to start")
        Path(tmp_path, "go").touch()
        results = running.result(timeout=120)
        assert time.monotonic() - started < 120
        assert len(pids_started(tmp_path, "killer")) == 2, "dask should have tried it on 2 workers"
        second_result, *unrelated_results = results  # type: ignore[misc]
        assert [r.unwrap().result() for r in unrelated_results] == [i * 10 for i in range(6)]
        assert second_result.is_error
        error = second_result.error
        assert isinstance(error, DependencyError)
        assert error.node is second and error.failed_node is killer
        assert "KilledWorker" in type(error.root_cause).__name__
        assert "'kill_my_worker'" in str(error) and "did not run" in str(error)
        with pytest.raises(DependencyError) as info:
            killer.result()
        assert info.value.node is killer
        assert str(info.value).startswith("node 'kill_my_worker' failed: KilledWorker")
        with pytest.raises(DependencyError) as info:
            dependent.result()
        assert info.value.node is dependent and info.value.failed_node is killer


# -- the scheduler killed mid-run -------------------------------------------------


def test_scheduler_killed_mid_run_raises_naming_its_address(
    own_cluster: Callable[..., Cluster],
    tmp_path: Path,
    background: Callable[..., concurrent.futures.Future[object]],
) -> None:
    cluster = own_cluster(1)
    ex = DaskExecutor(cluster.address, connect_timeout=3)
    try:
        node = Op(plus_one, Op(wait_then_return, str(tmp_path), 1))
        running = background(ex.run, [node])  # no timeout: the loss alone must end it
        wait_until(lambda: pids_started(tmp_path), 30, "the task to start")
        killed_at = time.monotonic()
        os.kill(cluster.scheduler.pid, signal.SIGKILL)
        with pytest.raises(SchedulerLostError) as info:
            running.result(timeout=30)
        assert time.monotonic() - killed_at < 15
        assert cluster.address in str(info.value)
        assert "lost the connection" in str(info.value)
    finally:
        Path(tmp_path, "go").touch()
        ex.close()


def test_scheduler_gone_between_runs_raises_naming_its_address(
    own_cluster: Callable[..., Cluster],
) -> None:
    cluster = own_cluster(1)
    ex = DaskExecutor(cluster.address, connect_timeout=2)
    try:
        ex.run([Op(plus_one, 1)], timeout=60)
        os.kill(cluster.scheduler.pid, signal.SIGKILL)
        cluster.scheduler.wait(10)
        started = time.monotonic()
        with pytest.raises((SchedulerLostError, OSError)) as info:
            ex.run([Op(plus_one, 2)], timeout=30)
        assert time.monotonic() - started < 20
        assert cluster.address in str(info.value)
    finally:
        ex.close()


# -- a restriction to a worker that does not exist --------------------------------


@pytest.mark.parametrize("workers", ["tcp://127.0.0.1:1", ["127.0.0.1:2"]])
def test_restriction_to_missing_worker_is_refused_at_submit(
    dask_cluster: Cluster, workers: str | list[str]
) -> None:
    client = Client(dask_cluster.address)
    try:
        node = Op(worker_address, "missing")
        started = time.monotonic()
        with pytest.raises(ValueError) as info:
            client.submit(node, workers=workers)
        assert time.monotonic() - started < 10
        message = str(info.value)
        missing = workers if isinstance(workers, str) else "tcp://" + workers[0]
        assert missing in message
        assert "connected workers" in message
        for address in dask_cluster.worker_addresses():
            assert address in message
        assert get_key(node) not in client.keys
    finally:
        client.shutdown()


# -- values that cannot be pickled ---------------------------------------------------


def test_unpicklable_value_is_a_dependency_error_naming_the_node(dask_cluster: Cluster) -> None:
    with DaskExecutor(dask_cluster.address) as ex:
        lock = Op(make_lock)
        lock.set_label("the lock")
        user = Op(lock_is_free, lock)
        fine = Op(plus_one, 1)
        started = time.monotonic()
        lock_result, user_result, fine_result = ex.run(
            [lock, user, fine], throw_error=False, timeout=60
        )
        assert time.monotonic() - started < 60
        assert fine_result.unwrap().result() == 2
        error = lock_result.error
        assert isinstance(error, DependencyError) and error.node is lock
        assert isinstance(error.err, UnpicklableResultError)
        assert str(error).startswith("node 'the lock' failed: UnpicklableResultError")
        assert "could not be pickled" in str(error) and "make_lock()" in str(error)
        assert "_thread.lock" in str(error)
        user_error = user_result.error
        assert isinstance(user_error, DependencyError) and user_error.failed_node is lock
        with pytest.raises(DependencyError, match="could not be pickled") as info:
            lock.result(timeout=30)
        assert info.value.node is lock
        with pytest.raises(DependencyError, match="the lock"):
            ex.run([user], timeout=60)


def test_unpicklable_value_wanted_on_another_worker_fails_instead_of_hanging(
    dask_cluster: Cluster,
) -> None:
    first, second = dask_cluster.worker_addresses()
    client = Client(dask_cluster.address)
    try:
        lock = Op(make_lock)
        lock.set_label("lock on one worker")
        user = Op(worker_address, lock)
        client.submit(lock, workers=first)
        client.submit(user, workers=second)
        started = time.monotonic()
        with pytest.raises(DependencyError, match="could not be pickled") as info:
            client.result(user, timeout=30)
        assert time.monotonic() - started < 30
        assert "lock on one worker" in str(info.value)
    finally:
        client.shutdown()


# -- many runs with reset: nothing left behind, no growth ------------------------------


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


@pytest.mark.slow
def test_repeated_runs_with_reset_leave_no_keys_and_do_not_grow(
    own_cluster: Callable[..., Cluster],
) -> None:
    cluster = own_cluster(2, env={"DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "inf"})
    rss: dict[int, int] = {}
    all_keys: set[str] = set()
    with DaskExecutor(cluster.address) as ex:
        for run in range(1, 21):
            leaves = [Op(operator.add, i, run) for i in range(999)]
            total = Op(sum, CollectNode(leaves))
            assert len(leaves) + 2 == 1001  # 1,000 nodes plus the collect
            (result,) = ex.run([total], timeout=120)
            assert result.unwrap().result() == sum(range(999)) + 999 * run
            all_keys |= ex.client.keys
            ex.reset()
            rss[run] = _rss()
        wait_until(
            lambda: not (all_keys & cluster.scheduler_keys()),
            30,
            "the scheduler to forget every key of the 20 runs",
        )
        assert ex.client.keys == set()
    grown = rss[20] - rss[5]
    assert grown < 40 * 2**20, f"client RSS grew by {grown / 2**20:.1f} MiB from run 5 to 20"
