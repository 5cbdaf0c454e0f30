"""`gc_paused`: no automatic garbage collection during a burst of allocations.

Planning and submitting a run of thousands of nodes allocates tens of thousands of
small objects, most of them short-lived and free of reference cycles. Python's
collector, counting allocations, would stop the burst many times to scan young
objects (promoting those that are alive at that moment, and so triggering full
collections of the whole heap, tens of milliseconds each on a large heap). Paused,
it runs at most once, after the burst, when the temporaries are gone.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0  # how many gc_paused blocks (of any thread) are open
_paused = False  # whether the outermost block disabled the collector (and must re-enable it)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable automatic garbage collection inside the block, if it is enabled.

    Blocks nest, also across threads: the collector is enabled again when the last
    open block exits, and only if it was enabled when the first one was entered.
    Objects allocated inside are collected as usual afterwards.
    """
    global _depth, _paused
    with _lock:
        if _depth == 0:
            _paused = gc.isenabled()
            if _paused:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _paused:
                _paused = False
                gc.enable()


def _after_fork_in_child() -> None:
    # A child forked during a pause has only the forking thread: no block of another
    # thread will ever exit there, so the collector would stay off for good.
    global _depth, _paused, _lock
    _lock = threading.Lock()
    if _paused:
        gc.enable()
    _depth, _paused = 0, False


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
