"""`gc_paused`: automatic collection is off inside, restored after, nesting included."""

from __future__ import annotations

import gc
import operator
import os
import subprocess
import sys
import textwrap

import pytest

from pydispatch import AsyncExecutor, Op
from pydispatch.gcpause import gc_paused


def test_gc_is_paused_inside_and_restored_after_nested_blocks() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block is still open
    assert gc.isenabled()


def test_a_collector_disabled_by_the_user_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_block_raises() -> None:
    try:
        with gc_paused():
            raise ValueError("inside")
    except ValueError:
        pass
    assert gc.isenabled()


class RecordingOp(Op):
    """An Op that notes whether automatic collection was on when its value was read."""

    seen: list[bool]

    def result(self, timeout: float | None = None) -> object:
        self.seen.append(gc.isenabled())
        return super().result(timeout)


def test_reading_the_inputs_of_a_run_is_not_inside_the_pause() -> None:
    # An input's value may take long to arrive (a cluster's): the pause must not span it.
    given = RecordingOp(abs, -2)
    given.seen = []
    with AsyncExecutor() as ex:
        ex.run([given])
        given.seen.clear()
        (result,) = ex.run([Op(operator.add, given, 1)], inputs=[given])
    assert result.unwrap().result() == 3
    assert given.seen and all(given.seen)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_process_forked_during_a_pause_has_its_collector_back() -> None:
    script = textwrap.dedent("""
        import gc, os
        from pydispatch.gcpause import gc_paused
        with gc_paused():
            pid = os.fork()
            if pid == 0:
                os._exit(0 if gc.isenabled() else 1)
            _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), gc.isenabled())
        """)
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]
