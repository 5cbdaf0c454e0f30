"""Mixed-language tests: real Julia on real dask processes.

They need `julia` on PATH and juliacall installed (`pip install -e ".[julia]"`);
elsewhere they skip and say why. Workers reuse the DispatchBridge project
(PYTHON_JULIACALL_EXE + PYTHON_JULIACALL_PROJECT), as `DispatchBridge.Worker` does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from distributed import Client

from pydispatch.julia import JuliaFunction, JuliaTaskError
from tests.julia_helpers import BRIDGE, JULIA, dask_cluster, last_seen, needs_julia, run_julia

pytestmark = [
    *needs_julia,
    pytest.mark.skipif(
        importlib.util.find_spec("juliacall") is None,
        reason="needs juliacall: pip install -e '.[julia]'",
    ),
]

STARTUP = 900.0  # first start precompiles DispatchBridge and its dependencies


def _worker_env() -> dict[str, str]:
    assert JULIA is not None
    return {
        "PYDISPATCH_JULIA_BACKEND": "juliacall",
        "PYTHON_JULIACALL_EXE": JULIA,
        "PYTHON_JULIACALL_PROJECT": str(BRIDGE),
        "PYTHON_JULIACALL_THREADS": "1",
        "JULIA_CONDAPKG_BACKEND": "Null",
        "JULIA_PYTHONCALL_EXE": sys.executable,
    }


@pytest.fixture(scope="module")
def instantiated() -> None:
    run_julia("using Pkg; Pkg.instantiate(); Pkg.precompile()")


@pytest.fixture(scope="module")
def address(instantiated: None) -> Iterator[str]:
    with dask_cluster(n_workers=1, worker_env=_worker_env(), timeout=STARTUP) as addr:
        yield addr


@pytest.fixture
def client(address: str) -> Iterator[Client]:
    with Client(address, timeout=30) as c:
        yield c


def test_python_runs_a_graph_of_julia_functions(client: Client) -> None:
    plus, mx = JuliaFunction("Base.+"), JuliaFunction("Base.max")
    dsk = {"a": (plus, 1, 2), "b": (mx, "a", 10), "c": (plus, "a", "b")}
    assert client.get(dsk, ["a", "b", "c"]) == [3, 10, 13]
    total = client.submit(JuliaFunction("Base.sum"), np.arange(5.0)).result(timeout=120)
    assert total == 10.0
    m = np.arange(6, dtype=np.int64).reshape(2, 3)
    t = client.submit(JuliaFunction("Base.permutedims"), m).result(timeout=120)
    assert isinstance(t, np.ndarray) and np.array_equal(t, m.T)


def test_pydispatch_executor_with_julia_functions(address: str) -> None:
    from pydispatch import DaskExecutor, Op

    a = Op(JuliaFunction("Base.+"), 1, 2)
    with DaskExecutor(address) as ex:
        (r,) = ex.run([Op(JuliaFunction("Base.max"), a, 2)], timeout=120)
    assert r.unwrap().result() == 3


def test_a_julia_exception_reaches_python(client: Client) -> None:
    with pytest.raises(JuliaTaskError) as info:
        client.submit(JuliaFunction("Base.sqrt"), -1.0).result(timeout=120)
    assert info.value.jltype == "DomainError"
    assert "sqrt" in info.value.message
    assert info.value.payload  # the serialized exception, for Julia clients


def test_a_long_julia_call_does_not_stop_heartbeats(client: Client) -> None:
    (addr,) = client.scheduler_info()["workers"]
    fut = client.submit(JuliaFunction("Base.Libc.systemsleep"), 6.0, pure=False)
    deadline = time.monotonic() + 120
    while client.processing()[addr] == () and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = {client.run_on_scheduler(last_seen, addr=addr)}
    while not fut.done() and time.monotonic() < deadline:
        seen.add(client.run_on_scheduler(last_seen, addr=addr))
        time.sleep(0.2)
    fut.result(timeout=120)
    assert len(seen) >= 2, "no heartbeat while Julia held the owner thread"


def test_julia_submits_a_dispatcher_graph_and_gets_julia_values(address: str) -> None:
    out = run_julia(
        f"""
        import Dispatcher, ResultTypes
        using DispatchBridge: DaskExecutor, PyFunc, RemoteTaskError, run!
        using PythonCall: PyException, pyimport
        exec = DaskExecutor("{address}")
        c = Dispatcher.Op(max, Dispatcher.Op(() -> 3), Dispatcher.Op(() -> 4))
        r = run!(exec, Dispatcher.DispatchGraph(c))
        v = fetch(ResultTypes.unwrap(r[1]))
        println("value=", v, " ", typeof(v))
        m = Dispatcher.Op(x -> x .* 2, Dispatcher.DataNode([1.0 2.0; 3.0 4.0]))
        println("matrix=", fetch(ResultTypes.unwrap(run!(exec, [m])[1])) == [2.0 4.0; 6.0 8.0])
        e = ResultTypes.unwrap_error(run!(exec, [Dispatcher.Op(sqrt, -1.0)]; throw_error=false)[1])
        println("julia_error=", e.err isa RemoteTaskError, " ", e.err.jltype)
        p = Dispatcher.Op(PyFunc(pyimport("operator").truediv), 1, 0)
        e = ResultTypes.unwrap_error(run!(exec, [p]; throw_error=false)[1])
        zde = occursin("ZeroDivisionError", sprint(showerror, e.err))
        println("python_error=", e.err isa PyException, " ", zde)
        """,
        timeout=STARTUP,
    )
    assert "value=4 Int64" in out
    assert "matrix=true" in out
    assert "julia_error=true DomainError" in out
    assert "python_error=true true" in out


def test_a_worker_launched_from_julia(instantiated: None) -> None:
    # The Julia process embeds Python, so PythonCall set PYTHON_JULIACALL_INIT=no in
    # it; the worker it launches must still start its own Julia.
    with dask_cluster(n_workers=0) as addr:
        out = run_julia(
            f"""
            import Dispatcher, ResultTypes
            using DispatchBridge: @everywhere, DaskExecutor, Worker, run!, shutdown
            @everywhere slowadd(x, y) = x + y
            w = Worker("{addr}"; timeout={STARTUP})
            try
                println("worker=", w.address)
                exec = DaskExecutor("{addr}")
                a = Dispatcher.Op(slowadd, 40, 1)
                b = Dispatcher.Op(slowadd, a, 1)
                r = run!(exec, [b]; timeout=600)
                println("value=", fetch(ResultTypes.unwrap(r[1])), " intermediate=", fetch(a))
                m = Dispatcher.Op(() -> [1 2; 3 4])
                nt = Dispatcher.Op(() -> (a = 1, b = 2))
                idx = [Dispatcher.IndexNode(m, 2), Dispatcher.IndexNode(nt, 2)]
                ix = run!(exec, idx; timeout=600)
                println("index=", [fetch(ResultTypes.unwrap(x)) for x in ix])
            finally
                shutdown(w)
            end
            """,
            timeout=STARTUP,
        )
    assert "worker=tcp://" in out
    assert "value=42 intermediate=41" in out
    assert "index=[3, 2]" in out


def test_dispatchbridge_pkg_test(instantiated: None) -> None:
    # run_julia fails the test (showing Julia's output) when Pkg.test() fails.
    run_julia("using Pkg; Pkg.test()", timeout=STARTUP)


def test_pydispatch_run_takes_a_julia_graph_file(address: str) -> None:
    graph = BRIDGE.parents[1] / "examples" / "julia" / "graph.jl"
    env = {**os.environ, **_worker_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pydispatch", "run", str(graph), "--scheduler", address, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=STARTUP,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    # `double` is a named function of the file: it reached the worker with the file.
    assert [(o["label"], o["value"]) for o in report["outputs"]] == [("max", 4), ("double", 6)]
