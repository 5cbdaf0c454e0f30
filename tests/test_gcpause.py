"""`gc_paused`: automatic collection is off inside, restored after, nesting included."""

from __future__ import annotations

import gc

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
