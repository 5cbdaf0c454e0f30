"""A discarded process pool leaves no worker process and no waiting thread behind.

`pydispatch.executors.process_pool` works around a CPython race (see its
docstring) through two private attributes of `ProcessPoolExecutor`; these tests
check that they exist and that the reaper ends every worker, including one the
pool's manager thread would join but never stop.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import time

import pytest
from real_cluster import process_gone, wait_until

from pydispatch.executors import process_pool

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def pool() -> cf.ProcessPoolExecutor:
    pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=SPAWN)
    yield pool
    for process in list((pool._processes or {}).values()):  # only if a test failed
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def test_the_private_attributes_the_reaper_reads_exist(pool: cf.ProcessPoolExecutor) -> None:
    assert pool.submit(abs, -1).result(timeout=60) == 1
    assert isinstance(pool._processes, dict) and pool._processes
    assert pool._executor_manager_thread is not None


def test_a_discarded_pool_stops_its_busy_worker_and_a_late_one(
    pool: cf.ProcessPoolExecutor,
) -> None:
    busy = pool.submit(time.sleep, 120)
    deadline = time.monotonic() + 60
    while not busy.running():
        assert time.monotonic() < deadline, "the pool never started the task"
        time.sleep(0.05)
    # A worker the manager thread knows but will never send a stop to: what a
    # `submit` racing with a broken pool leaves behind.
    late = SPAWN.Process(target=time.sleep, args=(120,), daemon=True)
    late.start()
    pool._processes[late.pid] = late
    pids = list(pool._processes)
    manager = pool._executor_manager_thread
    assert manager is not None

    reaper = process_pool.discard(pool)

    wait_until(lambda: all(process_gone(p) for p in pids), 30, f"workers {pids} to end")
    manager.join(30)
    assert not manager.is_alive(), "the pool's manager thread still waits for a worker"
    reaper.join(30)
    assert not reaper.is_alive()
    with pytest.raises(cf.process.BrokenProcessPool):
        busy.result(timeout=30)
