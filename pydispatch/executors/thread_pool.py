"""A thread pool that a hung call cannot keep from exiting.

`AsyncExecutor` runs nodes in threads. When a run times out, a node may still be
running in its thread, and Python cannot stop a thread. With
`concurrent.futures.ThreadPoolExecutor` the interpreter then waits for that
thread at exit (its threads are not daemons, and `_python_exit` joins them), so a
program whose run timed out on a hung node never ends.

`ThreadPool` is the same contract on daemon threads. At exit it still finishes
the work of every pool in use, as `ThreadPoolExecutor` does; only a pool the
executor has `abandon`ed (after a timeout) is left to the interpreter to end.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import itertools
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

_Work = tuple["cf.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_STOP = None

_in_use: weakref.WeakSet[ThreadPool] = weakref.WeakSet()


class ThreadPool(cf.Executor):
    """`concurrent.futures` executor on up to `max_workers` daemon threads."""

    _numbers = itertools.count()

    def __init__(self, max_workers: int, thread_name_prefix: str = "pydispatch-thread"):
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._shut = False
        # A pool dropped without shutdown (an executor never closed) stops its threads
        # once its queued work is done, as ThreadPoolExecutor's do: the threads hold
        # the queue, not the pool, and this reference's callback queues the stop. The
        # threads keep the reference alive (a reference that is garbage itself would
        # not call back).
        self._ref = weakref.ref(self, _stop_when_dropped(self._work))
        _in_use.add(self)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: cf.Future[Any] = cf.Future()
            self._work.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=_serve,
                    args=(self._ref, self._work, self._idle),
                    name=f"{self._prefix}_{next(self._numbers)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            if cancel_futures:
                self._cancel_queued()
            self._work.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()
        _in_use.discard(self)

    def abandon(self) -> None:
        """Shut down without waiting, cancel what is queued, and let exit not wait for
        what still runs (a call that may never return)."""
        _in_use.discard(self)
        self.shutdown(wait=False, cancel_futures=True)

    def _cancel_queued(self) -> None:
        while True:
            try:
                work = self._work.get_nowait()
            except queue.Empty:
                return
            if work is not _STOP and work[0].cancel():
                # `cancel` alone does not wake `concurrent.futures.wait`; this does.
                work[0].set_running_or_notify_cancel()


def _stop_when_dropped(
    work: queue.SimpleQueue[_Work | None],
) -> Callable[[weakref.ref[ThreadPool]], None]:
    return lambda _: work.put(_STOP)


def _serve(
    pool_ref: weakref.ref[ThreadPool],  # held so that its callback runs; see __init__
    work: queue.SimpleQueue[_Work | None],
    idle: threading.Semaphore,
) -> None:
    """A pool thread: run queued calls until the stop (which it passes on)."""
    while True:
        item = work.get()
        if item is _STOP:
            work.put(_STOP)  # for the next thread
            return
        future, fn, args, kwargs = item
        del item
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # as ThreadPoolExecutor: the future carries it
                future.set_exception(exc)
                del exc
            else:
                future.set_result(result)
                del result
        del future, fn, args, kwargs
        idle.release()


@atexit.register
def _finish_pools_in_use() -> None:
    # Daemon threads keep running while atexit handlers run, so this waits for the
    # work still queued or running in every pool that was not abandoned.
    for pool in list(_in_use):
        pool.shutdown(wait=True)
