"""`AsyncExecutor`'s thread pool: the `concurrent.futures` contract on daemon threads,
so that a node that never returns cannot keep a program from exiting."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from pydispatch.executors.thread_pool import ThreadPool

ROOT = Path(__file__).resolve().parents[1]


def run_script(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_results_and_exceptions_come_back_through_futures() -> None:
    pool = ThreadPool(2)
    try:
        assert pool.submit(pow, 2, 10).result(timeout=10) == 1024
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result(timeout=10)
    finally:
        pool.shutdown()


def test_no_more_than_max_workers_calls_run_at_once() -> None:
    pool = ThreadPool(2)
    gate = threading.Event()
    lock = threading.Lock()
    running = peak = 0

    def call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(10)
        with lock:
            running -= 1

    futures = [pool.submit(call) for _ in range(6)]
    gate.set()
    for future in futures:
        future.result(timeout=10)
    pool.shutdown()
    assert peak == 2
    assert len(pool._threads) == 2


def test_shutdown_with_cancel_futures_cancels_what_has_not_started() -> None:
    pool = ThreadPool(1)
    gate = threading.Event()
    running = pool.submit(gate.wait, 10)
    queued = pool.submit(abs, -1)
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    gate.set()
    assert running.result(timeout=10) is True
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(abs, -1)
    with pytest.raises(ValueError, match="at least 1"):
        ThreadPool(0)


def test_a_call_cancelled_by_shutdown_wakes_whoever_waits_for_it() -> None:
    pool = ThreadPool(1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    queued = pool.submit(abs, -1)
    waiter = threading.Thread(target=lambda: cf.wait([queued], timeout=10))
    waiter.start()
    pool.shutdown(wait=False, cancel_futures=True)
    waiter.join(10)
    gate.set()
    assert not waiter.is_alive(), "concurrent.futures.wait was not woken by the cancel"
    assert queued.cancelled()


def test_a_pool_dropped_without_shutdown_ends_its_threads_after_its_work() -> None:
    pool = ThreadPool(3)
    gate = threading.Event()
    futures = [pool.submit(gate.wait, 10) for _ in range(3)]
    threads = list(pool._threads)
    assert len(threads) == 3
    del pool  # an executor never closed
    gc.collect()
    gate.set()
    assert all(f.result(timeout=10) is True for f in futures)  # the work still finishes
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), f"{thread.name} still runs for a dropped pool"


def test_exit_finishes_the_work_of_a_pool_in_use(tmp_path: Path) -> None:
    done = tmp_path / "done"
    proc = run_script(f"""
        import time
        from pydispatch.executors.thread_pool import ThreadPool
        pool = ThreadPool(1)
        pool.submit(time.sleep, 0.5)
        pool.submit(open(r"{done}", "w").write, "finished")
        """)  # no shutdown: as with ThreadPoolExecutor, exit waits for the work
    assert proc.returncode == 0, proc.stderr
    assert done.read_text() == "finished"


def test_a_hung_node_after_a_timeout_does_not_keep_the_program_from_exiting() -> None:
    proc = run_script("""
        import threading
        from pydispatch import AsyncExecutor, Op, RunTimeoutError

        def hang():
            threading.Event().wait()

        with AsyncExecutor() as ex:
            try:
                ex.run([Op(hang)], timeout=0.5)
            except RunTimeoutError:
                print("timed out")
            print(ex.run([Op(abs, -3)])[0].unwrap().result())
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["timed", "out", "3"]
