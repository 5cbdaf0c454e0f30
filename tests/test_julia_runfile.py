"""`pydispatch run FILE.jl`: the file's definitions reach the workers; unknown names fail early.

Julia is replaced by a stub ``juliacall`` module (on the command's PYTHONPATH) whose
``DispatchBridge.load_graph_file`` does what the real one does: it records the
file as an ``@everywhere`` block and returns the graph's nodes. The workers are
real dask workers with the fake backend, which evaluates the block (Python source
standing in for Julia) so that ``Main.double`` exists there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.julia_helpers import REPO, dask_cluster

STUB = """
import os
from pydispatch import Op
from pydispatch.julia import JuliaFunction
from pydispatch.julia.everywhere import JuliaCode, add_block


class _DispatchBridge:
    @staticmethod
    def load_graph_file(path):
        with open(path, "rb") as f:
            add_block(JuliaCode(f.read(), ["double"], origin=path))
        needs = os.environ.get("STUB_NEEDS", "double").split(",")
        if os.environ.get("STUB_FAIL"):
            return [Op(JuliaFunction("Base.error"), "boom in julia")]
        node = Op(JuliaFunction("Main.double", main_names=needs), 21)
        return [node]


class _Main:
    DispatchBridge = _DispatchBridge()

    def seval(self, code):
        assert code == "import DispatchBridge"


Main = _Main()
"""


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with dask_cluster(n_workers=1, worker_env={"PYDISPATCH_JULIA_BACKEND": "fake"}) as addr:
        yield addr


def _run(
    tmp_path: Path, address: str, *, as_json: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    stub = tmp_path / "stub"
    stub.mkdir(exist_ok=True)
    (stub / "juliacall.py").write_text(STUB)
    graph = tmp_path / "graph.jl"
    graph.write_text("def double(x):\n    return 2 * x\n")
    path = os.pathsep.join([str(stub), str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [
            sys.executable,
            *("-m", "pydispatch", "run", str(graph), "--scheduler", address),
            *(("--json",) if as_json else ("--quiet",)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path, **env},
        timeout=120,
    )


def test_the_files_definitions_reach_the_workers(tmp_path: Path, address: str) -> None:
    done = _run(tmp_path, address)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert [(o["label"], o["value"]) for o in report["outputs"]] == [("double", 42)]


def test_a_function_no_worker_has_fails_before_the_run(tmp_path: Path, address: str) -> None:
    done = _run(tmp_path, address, STUB_NEEDS="double,helper")
    assert done.returncode != 0
    assert "needs Main.helper" in done.stderr
    assert "@everywhere" in done.stderr
    assert "UndefVarError" not in done.stderr + done.stdout


def test_a_julia_error_and_its_backtrace_are_printed_once(tmp_path: Path, address: str) -> None:
    done = _run(tmp_path, address, STUB_FAIL="1")
    assert done.returncode != 0
    report = json.loads(done.stdout)
    (out,) = report["outputs"]
    assert out["error"]["type"] == "JuliaTaskError"
    assert out["error"]["message"] == "Julia ErrorException: boom in julia"  # one line
    assert out["error"]["traceback"].count("Julia backtrace:") == 1
    text = _run(tmp_path, address, as_json=False, STUB_FAIL="1")
    assert text.returncode != 0
    assert text.stderr.count("Julia backtrace:") == 1, text.stderr
    assert "FAILED error: JuliaTaskError: Julia ErrorException: boom in julia" in text.stderr


@pytest.mark.parametrize(("file", "preload"), [("graph.jl", ["pydispatch.julia"]), ("g.py", None)])
def test_a_julia_files_embedded_workers_start_julia_before_registering(
    monkeypatch: pytest.MonkeyPatch, file: str, preload: list[str] | None
) -> None:
    # Without --scheduler, a Julia file's workers preload pydispatch.julia, so Julia
    # starts before they register (not later in the @everywhere plugin's setup, when
    # its GIL-holding start-up would stop the worker's heartbeats).
    import pydispatch
    from pydispatch.cli import build_parser
    from pydispatch.commands import run

    seen: dict[str, object] = {}

    def local(**kwargs: object) -> str:
        seen.update(kwargs)
        return "executor"

    monkeypatch.setattr(pydispatch.DaskExecutor, "local", local)
    args = build_parser().parse_args(["run", file])
    assert run._open_executor(args) == "executor"
    assert seen.get("preload") == preload
