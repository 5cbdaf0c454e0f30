"""The dask worker preload: start the Julia runtime before the worker registers.

``dask worker ADDRESS --preload pydispatch.julia`` (and ``pydispatch worker
ADDRESS --julia``) import :mod:`pydispatch.julia`, whose ``dask_setup`` and
``dask_teardown`` are these functions.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from .runtime import current_runtime, start_runtime, stop_runtime

__all__ = ["dask_setup", "dask_teardown"]

_users = 0
_users_lock = threading.Lock()


async def dask_setup(worker: Any) -> None:
    """Start this process's Julia runtime and wait until Julia is up.

    Runs in ``Worker.start`` before the worker registers, so Julia's start-up
    (which holds the GIL) happens before any heartbeat is due.
    """
    global _users
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, start_runtime)
    with _users_lock:
        _users += 1


async def dask_teardown(worker: Any) -> None:
    """Stop the runtime when the last worker of this process that uses it closes."""
    global _users
    with _users_lock:
        _users = max(0, _users - 1)
        last = _users == 0
    if last and current_runtime() is not None:
        await asyncio.get_running_loop().run_in_executor(None, stop_runtime)
