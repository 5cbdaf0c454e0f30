"""Julia tasks on real dask processes: scheduler + `dask worker --preload pydispatch.julia`.

The workers use the fake backend (``PYDISPATCH_JULIA_BACKEND=fake``), so this
runs without Julia yet exercises the real preload, pickling through the real
scheduler, the owner thread inside a real worker, error transport and liveness.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from distributed import Client

from pydispatch.julia import JuliaFunction, JuliaTaskError
from tests.julia_helpers import dask_cluster, last_seen, runtime_state

FAKE = {"PYDISPATCH_JULIA_BACKEND": "fake"}


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with dask_cluster(n_workers=1, worker_env=FAKE) as addr:
        yield addr


@pytest.fixture
def client(address: str) -> Iterator[Client]:
    with Client(address, timeout=30) as c:
        yield c


def test_preload_started_the_runtime_before_any_task(client: Client) -> None:
    states = client.run(runtime_state)
    assert len(states) == 1
    ((running, backend, tid),) = states.values()
    assert running and backend == "fake" and tid is not None


def test_a_graph_of_julia_functions_runs_through_the_scheduler(client: Client) -> None:
    plus, mx = JuliaFunction("Base.+"), JuliaFunction("Base.max")
    dsk = {"a": (plus, 1, 2), "b": (mx, "a", 10), "c": (plus, "a", "b")}
    assert client.get(dsk, ["a", "b", "c"]) == [3, 10, 13]


def test_julia_tasks_run_on_the_worker_owner_thread(client: Client) -> None:
    ((_, _, owner),) = client.run(runtime_state).values()
    futures = [client.submit(JuliaFunction("Base.Threads.threadid"), pure=False) for _ in range(6)]
    assert set(client.gather(futures)) == {owner}


def test_a_julia_exception_reaches_python(client: Client) -> None:
    fut = client.submit(JuliaFunction("Base.error"), "boom from julia")
    with pytest.raises(JuliaTaskError) as info:
        fut.result(timeout=30)
    assert info.value.jltype == "ErrorException"
    assert info.value.message == "boom from julia"


def _longest_heartbeat_gap(client: Client, function: str, seconds: float) -> float:
    """Run the fake Julia ``function`` for ``seconds``; the longest time the scheduler
    then went without hearing from the worker (sampled, bounded waits)."""
    (addr,) = client.scheduler_info()["workers"]
    fut = client.submit(JuliaFunction(function), seconds, pure=False)
    deadline = time.monotonic() + 60
    while client.processing()[addr] == () and time.monotonic() < deadline:
        time.sleep(0.05)
    changes = [(time.monotonic(), client.run_on_scheduler(last_seen, addr=addr))]
    while not fut.done() and time.monotonic() < deadline:
        seen = client.run_on_scheduler(last_seen, addr=addr)
        if seen != changes[-1][1]:
            changes.append((time.monotonic(), seen))
        time.sleep(0.05)
    assert fut.result(timeout=60) == seconds
    ends = [t for t, _ in changes] + [time.monotonic()]
    return max(b - a for a, b in itertools.pairwise(ends))


def test_a_long_julia_call_does_not_stop_heartbeats(client: Client) -> None:
    # Main.spin is a C call that releases the GIL, as DispatchBridge runs Julia work.
    gap = _longest_heartbeat_gap(client, "Main.spin", 4.0)
    assert gap < 2.5, f"the worker went {gap:.1f} s without a heartbeat during the call"


def test_the_heartbeat_check_catches_a_call_that_holds_the_gil(client: Client) -> None:
    # The control: the same C call made holding the GIL (as a juliacall call that
    # did not release it would) silences the worker for the whole call.
    gap = _longest_heartbeat_gap(client, "Main.spin_holding_gil", 4.0)
    assert gap >= 3.0, f"expected the worker to go silent, longest gap {gap:.1f} s"


def test_pydispatch_ops_with_julia_functions(address: str) -> None:
    from pydispatch import DaskExecutor, Op

    plus, mx = JuliaFunction("Base.+"), JuliaFunction("Base.max")
    a = Op(plus, 1, 2)
    out = Op(mx, a, Op(plus, a, 1))
    with DaskExecutor(address) as ex:
        (result,) = ex.run([out], timeout=60)
        assert result.unwrap().result() == 4
        (bad,) = ex.run([Op(JuliaFunction("Base.error"), "nope")], throw_error=False, timeout=60)
    assert bad.is_error and isinstance(bad.error.err, JuliaTaskError)
