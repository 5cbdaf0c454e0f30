"""@everywhere: code for every worker's Julia, and rejecting what no worker can resolve.

Real dask scheduler and worker processes (``--preload pydispatch.julia``) with the
fake backend, whose ``@everywhere`` blocks are Python source: what a block
defines becomes ``Main.<name>``, as a Julia block's definitions do.
"""

from __future__ import annotations

import importlib.util
import operator
import sys
from collections.abc import Iterator

import pytest
from distributed import Client

from pydispatch import DaskExecutor, DataNode, Op
from pydispatch.julia import JuliaFunction, JuliaTaskError, UnavailableFunctionError, everywhere
from pydispatch.julia.everywhere import JuliaCode
from tests.julia_helpers import dask_cluster, evaluated_blocks, extra_worker

FAKE = {"PYDISPATCH_JULIA_BACKEND": "fake"}

SLOWADD = JuliaCode(
    b"def slowadd(x, y):\n    return x + y\n", ["slowadd"], text="slowadd(x, y) = x + y"
)


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    everywhere.clear()
    yield
    everywhere.clear()


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with dask_cluster(n_workers=1, worker_env=FAKE) as addr:
        yield addr


def test_a_named_main_function_is_rejected_before_submission(address: str) -> None:
    node = Op(JuliaFunction("Main.nowhere", main_names=["nowhere"]), 1, 2)
    node.label = "nowhere"
    with DaskExecutor(address) as ex:
        with pytest.raises(UnavailableFunctionError) as info:
            from pydispatch.julia.hostapi import run

            run(ex, [Op(JuliaFunction("Base.+"), node, 1)], timeout=60)
        # Nothing reached the scheduler: the client submitted no key.
        assert ex.client.keys == set()
    message = str(info.value)
    assert "'nowhere' needs Main.nowhere" in message
    assert "@everywhere" in message
    assert info.value.missing == {"nowhere": ("nowhere",)}


def test_everywhere_code_reaches_current_and_later_workers(address: str) -> None:
    everywhere.add_block(SLOWADD)
    node = Op(JuliaFunction("Main.slowadd", main_names=["slowadd"]), 40, 2)
    with DaskExecutor(address) as ex:
        from pydispatch.julia.hostapi import run

        ((kind, value),) = run(ex, [node], timeout=60)  # attaches, then checks, then runs
        assert (kind, value) == ("ok", ("int", 42))
        with extra_worker(address, FAKE) as late:
            # The worker that joined after the block was registered ran it before any task.
            with Client(address, timeout=30) as client:
                assert client.run(evaluated_blocks, workers=[late])[late] == ["eval:everywhere"]
                fut = client.submit(JuliaFunction("Main.slowadd"), 1, 2, workers=[late], pure=False)
                assert fut.result(timeout=60) == 3


def test_a_block_runs_once_per_worker_process_and_new_blocks_are_added(address: str) -> None:
    everywhere.add_block(SLOWADD)
    more = JuliaCode(b"def triple(x):\n    return 3 * x\n", ["triple"], origin="more")
    with Client(address, timeout=30) as client:
        everywhere.attach(client)
        everywhere.attach(client)  # nothing new: not sent again
        everywhere.add_block(more)  # sent to the attached client's workers at once
        (seen,) = client.run(evaluated_blocks).values()
        assert seen.count("eval:more") == 1
        assert client.submit(JuliaFunction("Main.triple"), 5, pure=False).result(60) == 15
    assert everywhere.available_names() == {"slowadd", "triple"}


def test_a_failing_block_fails_where_it_is_sent(address: str) -> None:
    broken = JuliaCode(b"raise ValueError('bad block')\n", ["x"], origin="broken")
    everywhere.add_block(broken)
    with Client(address, timeout=30) as client:
        with pytest.raises(JuliaTaskError, match="bad block") as info:
            everywhere.attach(client)
        assert info.value.jltype == "ValueError"


def test_closure_needs_are_checked_and_satisfied_by_a_block() -> None:
    closure = JuliaFunction.from_serialized(b"bytes", name="#3", main_names=["helper", "K"])
    graph = [Op(JuliaFunction("Base.+"), Op(closure, DataNode(1)), 1)]
    with pytest.raises(UnavailableFunctionError, match=r"Main\.K, Main\.helper"):
        everywhere.check_available(graph)
    everywhere.check_available(graph, provided={"helper", "K"})
    everywhere.add_block(JuliaCode(b"x", ["helper", "K"]))
    everywhere.check_available(graph)  # the recorded block provides both


@pytest.mark.skipif(
    importlib.util.find_spec("juliacall") is not None,
    reason="needs a Python without juliacall (a non-Julia worker of a mixed cluster)",
)
def test_a_worker_without_juliacall_is_skipped_not_failed() -> None:
    # A plain `dask worker` (no preload, the default juliacall backend) in a Python
    # without juliacall: the plugin logs and skips it instead of failing
    # `register_plugin` for the whole cluster; it still runs Python tasks.
    everywhere.add_block(SLOWADD)
    env = {"PYDISPATCH_JULIA_BACKEND": "juliacall"}
    with dask_cluster(n_workers=1, worker_env=env, worker_args=()) as addr:
        with Client(addr, timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
            everywhere.attach(client)
            assert client.submit(operator.add, 1, 2, pure=False).result(30) == 3
            # and it evaluated nothing
            assert client.run(lambda: sorted(everywhere._evaluated)) == {
                w: [] for w in client.scheduler_info()["workers"]
            }


def test_backend_importable_follows_the_backend_and_juliacall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydispatch.julia import backends

    monkeypatch.setenv("PYDISPATCH_JULIA_BACKEND", "fake")
    assert backends.backend_importable()
    monkeypatch.setenv("PYDISPATCH_JULIA_BACKEND", "juliacall")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.delitem(sys.modules, "juliacall", raising=False)
    assert not backends.backend_importable()


def test_julia_values_that_need_main_names_are_checked_too() -> None:
    # What DispatchBridge passes for `Op(map, slowinc, xs)`, `DataNode(Scale(2))`, an
    # `IndexNode` with a Main index and an `Op(PyFunc(...), Scale(2))`: the function
    # (Base.map, getindex, a Python callable) needs nothing, its values do.
    from pydispatch.julia import hostapi

    mapped = hostapi.julia_op(
        ("ref", "Base.map", "", True), "map", [("int", 1)], {}, [], ["slowinc"]
    )
    data = hostapi.data_node(("int", 2), ["Scale"])
    indexed = hostapi.index_node(hostapi.data_node(("int", 3)), ("int", 1), "getindex", ["Key"])
    pyop = hostapi.python_op(max, "max", [data], {"k": ("int", 1)}, ["Weight"])
    graph = [mapped, indexed, pyop]
    with pytest.raises(UnavailableFunctionError) as info:
        everywhere.check_available(graph)
    assert info.value.missing == {
        "map": ("slowinc",),
        "getindex": ("Key",),
        "max": ("Weight",),
        str(data.label): ("Scale",),
    }
    everywhere.check_available(graph, provided={"slowinc", "Scale", "Key", "Weight"})
    # Nodes without value needs record nothing.
    assert everywhere._julia_needs([hostapi.data_node(("int", 4))]) == []


def test_main_names_are_not_part_of_identity_but_survive_pickling() -> None:
    import pickle

    a = JuliaFunction("Main.f", main_names=["f"])
    assert a == JuliaFunction("Main.f") and a.digest == JuliaFunction("Main.f").digest
    assert pickle.loads(pickle.dumps(a)).main_names == ("f",)
    with pytest.raises(TypeError, match="not one str"):
        JuliaFunction("Main.f", main_names="f")


def test_a_block_error_is_a_julia_task_error_on_the_runtime() -> None:
    from pydispatch.julia import JuliaRuntime
    from pydispatch.julia.backends import FakeBackend

    rt = JuliaRuntime(FakeBackend(), idle_interval=0.01).start(30)
    try:
        with pytest.raises(JuliaTaskError, match="ZeroDivisionError"):
            rt.call(JuliaCode(b"1 / 0\n", []))
        assert rt.call(JuliaCode(b"def f():\n    return 7\n", ["f"])) is None
        assert rt.call(JuliaFunction("Main.f")) == 7
    finally:
        rt.stop()


def test_the_plugin_starts_julia_on_workers_started_without_the_preload() -> None:
    # `pydispatch run FILE.jl` on the embedded cluster: its workers have no preload;
    # the file's block starts Julia on each before it takes a task.
    from tests.julia_helpers import runtime_state

    everywhere.add_block(SLOWADD)
    with dask_cluster(n_workers=1, worker_env=FAKE, worker_args=()) as addr:
        with Client(addr, timeout=30) as client:
            ((running, _, _),) = client.run(runtime_state).values()
            assert not running
            everywhere.attach(client)
            ((running, backend, _),) = client.run(runtime_state).values()
            assert running and backend == "fake"
            assert client.submit(JuliaFunction("Main.slowadd"), 2, 3).result(60) == 5


def test_a_julia_task_function_that_calls_python_is_refused_saying_why() -> None:
    # DispatchBridge marks names from PythonCall (task functions run without the GIL):
    # no @everywhere block can make that call safe.
    closure = JuliaFunction.from_serialized(
        b"bytes", name="#4", main_names=["PythonCall.pyimport", "helper"]
    )
    node = Op(closure, 1)
    node.label = "uses_python"
    with pytest.raises(UnavailableFunctionError, match="GIL released") as info:
        everywhere.check_available([node], provided={"helper", "PythonCall.pyimport"})
    assert "'uses_python' uses PythonCall.pyimport" in str(info.value)
    assert "PyFunc" in str(info.value)
    assert info.value.missing == {"uses_python": ("PythonCall.pyimport",)}


def test_a_julia_function_that_holds_the_gil_may_call_python() -> None:
    closure = JuliaFunction.from_serialized(
        b"bytes", name="#5", nogil=False, main_names=["PythonCall.pystr"]
    )
    everywhere.check_available([Op(closure, 1)], provided=set())
