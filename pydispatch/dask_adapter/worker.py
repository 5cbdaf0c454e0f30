"""`Worker`: a dask worker in this process, running in the background."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import distributed

from ..address import Address
from ..errors import DispatcherError
from .connection import (
    check_seconds,
    check_tls_config,
    connect_error,
    is_tls_mismatch,
    normalize_address,
)


class Worker:
    """A dask worker that joins the scheduler at `scheduler_address`.

    It runs on an event loop in a background thread of this process; options
    (`nthreads`, `name`, `resources`, `memory_limit`, `security`, ...) go to
    `distributed.Worker`.
    """

    def __init__(
        self,
        scheduler_address: str | Address = "127.0.0.1:8786",
        *,
        start_timeout: float = 30.0,
        **options: Any,
    ):
        self.scheduler_address = normalize_address(scheduler_address)
        check_seconds("start_timeout", start_timeout)
        if options.get("security") is not None and self.scheduler_address.startswith("tcp://"):
            self.scheduler_address = "tls://" + self.scheduler_address[len("tcp://") :]
        check_tls_config(self.scheduler_address, options.get("security"), "worker")
        options.setdefault("host", "127.0.0.1")
        options.setdefault("nthreads", 1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pydispatch-worker", daemon=True
        )
        self._thread.start()
        self._worker: distributed.Worker | None = None
        started = asyncio.run_coroutine_threadsafe(self._start(options), self._loop)
        try:
            started.result(start_timeout)
        except BaseException as err:
            started.cancel()
            self._stop_loop()
            address = self.scheduler_address
            cause = err.__cause__
            if isinstance(err, RuntimeError) and cause is not None:
                if isinstance(cause, OSError) or is_tls_mismatch(address, cause):
                    err = cause  # unwrap dask's "Worker failed to start."
            tls = address.startswith("tls://")
            if is_tls_mismatch(address, err) or (tls and isinstance(err, OSError)):
                raise connect_error(self.scheduler_address, start_timeout, err, "worker") from None
            if isinstance(err, (OSError, TimeoutError)):
                raise DispatcherError(
                    f"the worker could not join the dask scheduler at {self.scheduler_address} "
                    f"within {start_timeout}s ({type(err).__name__}: {err}); check that a "
                    "scheduler runs there (`dask scheduler`)"
                ) from None
            raise

    async def _start(self, options: dict[str, Any]) -> None:
        self._worker = await distributed.Worker(self.scheduler_address, **options)

    @property
    def address(self) -> str:
        """This worker's own address, for `client.submit(node, workers=[...])`."""
        if self._worker is None:
            raise DispatcherError("the worker is closed")
        return str(self._worker.address)

    @property
    def dask_worker(self) -> distributed.Worker:
        """The underlying `distributed.Worker`."""
        if self._worker is None:
            raise DispatcherError("the worker is closed")
        return self._worker

    def close(self, timeout: float = 30.0) -> None:
        """Leave the scheduler and stop, without waiting for running tasks."""
        worker, self._worker = self._worker, None
        if worker is not None:
            closing = asyncio.run_coroutine_threadsafe(
                worker.close(executor_wait=False, timeout=timeout), self._loop
            )
            try:
                closing.result(timeout)
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._worker is None else self.address
        return f"<pydispatch.Worker {state} -> {self.scheduler_address}>"
