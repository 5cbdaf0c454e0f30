"""Discard a process pool so that none of its worker processes outlives it.

`ParallelExecutor` drops its `ProcessPoolExecutor` when a worker dies (the pool
is broken) or when a run times out (a hung node must stop). CPython's pool does
not stop its workers reliably in the first case. In
`_ExecutorManagerThread.terminate_broken` (CPython 3.11 to 3.13,
Lib/concurrent/futures/process.py) the manager thread terminates the workers
it knows, then joins every worker. A worker that `submit` spawned in between
(`submit` does not take the lock the manager uses to mark the pool broken) is
joined but never told to stop. The manager thread then waits forever. At
interpreter exit `concurrent.futures.process._python_exit` joins that thread,
so the whole program hangs after its last line. Our test suite met this after
its summary line.

So a discarded pool gets a reaper: a daemon thread that kills every worker
process of the pool, including any spawned late, until the pool's manager
thread has ended. This needs two private attributes of `ProcessPoolExecutor`
(`_processes`, `_executor_manager_thread`); `tests/test_process_pool.py` checks
that they still exist. Python 3.14's public `kill_workers()` reads the same
`_processes` and has the same window, so it is no replacement.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading


def discard(pool: cf.ProcessPoolExecutor) -> threading.Thread:
    """Shut `pool` down without waiting and kill its worker processes.

    Calls not yet finished, queued ones included, fail with `BrokenProcessPool`
    (`ParallelExecutor` retries that by default). They are not cancelled: the pool
    would drop a cancelled call without waking `concurrent.futures.wait`, so a
    second run waiting for it would wait forever. Returns the reaper thread (a
    daemon). It ends once the pool's manager thread has ended, which it does once
    every worker process is gone.
    """
    # `shutdown` sets both attributes to None: take them first.
    processes = getattr(pool, "_processes", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False)
    reaper = threading.Thread(
        target=_kill_until_stopped,
        args=(processes, manager),
        name="pydispatch-pool-reaper",
        daemon=True,
    )
    reaper.start()
    return reaper


def _kill_until_stopped(processes: dict | None, manager: threading.Thread | None) -> None:
    killed: set[int] = set()
    while True:
        for pid, process in list((processes or {}).items()):
            if pid not in killed:
                # multiprocessing sends no signal to a process it has already reaped,
                # so a reused PID is never hit.
                process.kill()
                killed.add(pid)
        if manager is None or not manager.is_alive():
            return
        manager.join(0.2)
