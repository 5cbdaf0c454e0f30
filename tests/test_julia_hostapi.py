"""What DispatchBridge asks of Python (`pydispatch.julia.hostapi`), checked without Julia."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from pydispatch import DaskExecutor, RunTimeoutError
from pydispatch.julia import JuliaFunction, hostapi
from pydispatch.julia.convert import encode
from tests.julia_helpers import dask_cluster

FAKE = {"PYDISPATCH_JULIA_BACKEND": "fake"}
SEP = ";" if sys.platform == "win32" else ":"


# -- the environment of a worker launched from Julia ----------------------------------
def test_worker_env_drops_the_no_init_flag_python_in_julia_sets() -> None:
    base = {"PYTHON_JULIACALL_INIT": "no", "HOME": "/home/u"}
    env = hostapi.worker_env("/opt/julia/bin/julia", "/proj", base)
    assert "PYTHON_JULIACALL_INIT" not in env
    assert env["HOME"] == "/home/u"
    assert env["PYTHON_JULIACALL_EXE"] == "/opt/julia/bin/julia"
    assert env["PYTHON_JULIACALL_PROJECT"] == "/proj"
    assert env["PYTHON_JULIACALL_THREADS"] == "1"
    assert env["PYDISPATCH_JULIA_BACKEND"] == "juliacall"
    assert base["PYTHON_JULIACALL_INIT"] == "no"  # the caller's mapping is not changed


def test_worker_env_puts_the_stdlib_back_on_a_pkg_test_load_path() -> None:
    env = hostapi.worker_env("julia", "/proj", {"JULIA_LOAD_PATH": f"@{SEP}/tmp/jl_abc"})
    assert env["JULIA_LOAD_PATH"] == f"@{SEP}/tmp/jl_abc{SEP}@stdlib"
    # Already there, or an empty entry (which stands for the default path): unchanged.
    for path in (f"@{SEP}@stdlib", f"@{SEP}", ""):
        assert hostapi.worker_env("j", "/p", {"JULIA_LOAD_PATH": path})["JULIA_LOAD_PATH"] == path
    assert "JULIA_LOAD_PATH" not in hostapi.worker_env("j", "/p", {})


def test_worker_env_uses_the_given_environment_not_pythons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONLY_IN_PYTHON", "1")
    env = hostapi.worker_env("j", "/p", {"SET_LATER_IN_JULIA": "yes", "PYTHONPATH": "/a"}, "/pc")
    assert env["SET_LATER_IN_JULIA"] == "yes" and "ONLY_IN_PYTHON" not in env
    assert env["PYTHONPATH"] == f"/pc{__import__('os').pathsep}/a"
    assert "ONLY_IN_PYTHON" in hostapi.worker_env("j", "/p")  # default: os.environ


def test_worker_env_keeps_a_thread_count_the_user_chose() -> None:
    env = hostapi.worker_env("j", "/p", {"PYTHON_JULIACALL_THREADS": "4"})
    assert env["PYTHON_JULIACALL_THREADS"] == "4"


# -- nodes ---------------------------------------------------------------------------
def test_a_julia_index_node_is_julias_getindex_with_the_index_unchanged() -> None:
    parent = hostapi.data_node(encode([10, 20, 30]))
    node = hostapi.index_node(parent, ("int", 1), "getindex")
    assert node.func == JuliaFunction("Base.getindex")
    assert node.args == (parent, 1)  # 1-based, as Julia's getindex wants it
    assert node.label == "getindex"


def test_labels_come_from_julia() -> None:
    op = hostapi.julia_op(("ref", "Base.max", "", True), "max", [("int", 1)], {}, ["x"])
    assert op.label == "max" and op.func.main_names == ("x",)
    py = hostapi.python_op(max, "max", [("int", 1), ("int", 2)], {})
    assert py.label == "max" and py.args == (1, 2)


# -- running a Julia graph: every node's outcome --------------------------------------
@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with dask_cluster(n_workers=1, worker_env=FAKE) as addr:
        yield addr


def test_run_graph_gives_every_node_its_outcome(address: str) -> None:
    plus, mx, err = JuliaFunction("Base.+"), JuliaFunction("Base.max"), JuliaFunction("Base.error")
    a = hostapi.julia_op(plus.spec(), "a", [("int", 1), ("int", 2)], {})
    b = hostapi.julia_op(err.spec(), "b", [("str", "boom")], {})
    c = hostapi.julia_op(plus.spec(), "c", [a, b], {})
    d = hostapi.julia_op(mx.spec(), "d", [a, ("int", 10)], {})
    first = hostapi.index_node(hostapi.data_node(encode((7, 8))), ("int", 1))
    with DaskExecutor(address) as ex:
        # Outputs c and d, d listed twice; a, b and the index node are not outputs.
        out = hostapi.run_graph(ex, [a, b, c, d, first], [2, 3, 3, 4], timeout=60)
    assert out[0] == ("ok", ("int", 3))  # an intermediate has its value
    assert out[1][0] == "julia" and out[1][1] == "ErrorException" and out[1][2] == "boom"
    assert out[2] == ("upstream", 1)  # did not run: b failed
    assert out[3] == ("ok", ("int", 10))
    assert out[4] == ("ok", ("int", 7))  # Julia's getindex: 1-based


def test_run_graph_fills_every_node_when_the_run_itself_fails(address: str) -> None:
    spin = hostapi.julia_op(JuliaFunction("Main.spin").spec(), "spin", [("float", 3.0)], {})
    other = hostapi.julia_op(JuliaFunction("Base.max").spec(), "m", [spin, ("int", 1)], {})
    with DaskExecutor(address) as ex:
        out = hostapi.run_graph(ex, [spin, other], [1], timeout=0.3)
    assert [o[0] for o in out] == ["python", "python"]
    assert all(isinstance(o[1], RunTimeoutError) for o in out)


def test_run_with_an_output_twice(address: str) -> None:
    a = hostapi.julia_op(JuliaFunction("Base.+").spec(), "a", [("int", 1), ("int", 1)], {})
    with DaskExecutor(address) as ex:
        assert hostapi.run(ex, [a, a], timeout=60) == [("ok", ("int", 2))] * 2


def test_a_julia_op_may_take_a_keyword_named_func() -> None:
    # Dispatcher.Op(f, xs; func = abs): `func` is the call's keyword, not Op's function.
    node = hostapi.julia_op(("ref", "Base.max", "", True), "m", [], {"func": ("int", 1)})
    assert node.func == JuliaFunction("Base.max")
    assert node.kwargs == {"func": 1}
