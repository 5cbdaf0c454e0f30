"""The `pydispatch` command, through subprocesses, on real dask processes.

Embedded-cluster runs are slow to start and stop (seconds each on a small
machine), so only one test uses one; the others run on the shared
`dask_cluster` fixture or in-process against an `AsyncExecutor`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import distributed
import psutil
import pytest
from markers import needs_dot
from real_cluster import Cluster, end_process, free_port, wait_until

from pydispatch import AsyncExecutor, DispatchGraph, Executor, ParallelExecutor, __version__, cli
from pydispatch.commands import run as run_command
from pydispatch.julia.runfile import load_julia_graph
from pydispatch.runfile import GraphFileError, load_graph_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SVG = "{http://www.w3.org/2000/svg}"

FAILING = """\
from pydispatch import Op

def three():
    return 3

def boom(x):
    raise ValueError(f"bad value {x}")

a = Op(three)
b = Op(boom, a)
outputs = [a, b, Op(max, b, a)]
"""


# boom's traceback runs through a nested function, a lambda, a helper and a comprehension:
# each frame must show this file, its line and its source text.
NESTED_FAILURE = """\
from pydispatch import Op


def helper(values):
    return [1 / v for v in values]


def boom():
    def inner():
        check = lambda v: helper([v])  # noqa: E731
        return check(0)

    return inner()


outputs = [Op(boom)]
"""
NESTED_FRAMES = [
    (13, "boom", "return inner()"),
    (11, "inner", "return check(0)"),
    (10, "<lambda>", "check = lambda v: helper([v])  # noqa: E731"),
    (5, "helper", "return [1 / v for v in values]"),
]


def assert_user_traceback(trace: str, path: Path) -> None:
    """`trace` shows each frame of NESTED_FAILURE with file, line and source; nothing else."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n +(.+)', trace)
    assert [(int(line), name, source.strip()) for _, line, name, source in frames[:4]] == (
        NESTED_FRAMES
    ), trace
    assert {file for file, *_ in frames} == {str(path)}, trace  # no frame of pydispatch's
    assert "<dynamic-code>" not in trace and "pydispatch" not in trace
    assert trace.rstrip().endswith("ZeroDivisionError: division by zero"), trace


def pydispatch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m pydispatch ARGS` with pipes (so not on a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "pydispatch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture
def failing_file(tmp_path: Path) -> Path:
    path = tmp_path / "failing.py"
    path.write_text(FAILING)
    return path


# -- the embedded cluster (the one slow test) -----------------------------------------


def test_cluster_example_on_embedded_cluster(tmp_path: Path) -> None:
    picture = tmp_path / "cluster.dot"  # graphviz source: needs no `dot` program
    proc = pydispatch(
        "run", "examples/cluster.py", "--workers", "2", "--threads", "1",
        "--json", "--visualize", str(picture),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["ok"] is True
    assert document["outputs"] == [{"label": "reduction", "ok": True, "value": 200}]
    assert document["scheduler"].startswith("tcp://127.0.0.1:")
    assert document["visualization"] == str(picture)
    # Not a terminal: plain progress lines, then one final summary.
    assert re.search(r"^pydispatch: running \d+ nodes$", proc.stderr, re.M)
    final = re.findall(r"^pydispatch: (\d+)/(\d+) finished, [\d.]+s elapsed$", proc.stderr, re.M)
    assert len(final) == 1 and int(final[0][1]) >= 490
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    source = picture.read_text()
    assert source.startswith("digraph pydispatch {")
    for label in ("load", "load_from_sql", "process", "roll", "compare", "reduction"):
        assert re.search(rf'label="?{label}"?[ \]]', source), label
    assert 'fillcolor="#b7e4a7"' in source  # after the run: nodes coloured as done


def test_tracebacks_show_the_users_file_lines_and_source_without_dasks_log(
    tmp_path: Path,
) -> None:
    """On the embedded cluster pydispatch reports a failure once, readably.

    dask's worker log of the failure ("Compute Failed") would repeat it, so it is quiet.
    """
    path = tmp_path / "fail.py"
    path.write_text(NESTED_FAILURE)
    proc = pydispatch("run", str(path), "--workers", "1", "--threads", "1")
    assert proc.returncode == 1
    err = proc.stderr
    assert "FAILED boom: ZeroDivisionError: division by zero" in err
    assert "Compute Failed" not in err and "distributed.worker - ERROR" not in err, err
    trace = err.split("traceback of 'boom' (where it ran):\n", 1)[1]
    trace = trace.split("\npydispatch: ", 1)[0]  # up to the closing summary line
    assert trace.count("Traceback (most recent call last)") == 1
    assert_user_traceback(trace, path)


# -- runs on the fixture cluster ------------------------------------------------------


def test_json_traceback_shows_the_users_frames_and_dask_keeps_its_log_there(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    path = tmp_path / "fail.py"
    path.write_text(NESTED_FAILURE)
    proc = pydispatch("run", str(path), "--scheduler", dask_cluster.address, "--json")
    assert proc.returncode == 1
    (boom,) = json.loads(proc.stdout)["outputs"]
    assert_user_traceback(boom["error"]["traceback"], path)
    # Not an embedded cluster: its workers' own log of the failure is left alone.
    with distributed.Client(dask_cluster.address, timeout=10, set_as_default=False) as client:
        logs = client.get_worker_logs()
    assert any("Compute Failed" in text for lines in logs.values() for _, text in lines)


def test_pydispatch_frames_from_a_worker_elsewhere_are_left_out_by_module(
    tmp_path: Path,
) -> None:
    """On another machine pydispatch lives at another path: its module names still tell."""
    from tblib import Traceback

    from pydispatch.tracebacks import format_user_frames

    user = tmp_path / "job.py"
    user.write_text("def boom():\n    raise ValueError('x')\n")

    def frame(filename: str, module: str, name: str, line: int, below: object) -> object:
        code = {"co_filename": filename, "co_name": name}
        globs = {"__name__": module, "__file__": filename}
        return {
            "tb_frame": {"f_globals": globs, "f_locals": {}, "f_code": code, "f_lineno": line},
            "tb_lineno": line,
            "tb_next": below,
        }

    remote = frame(
        "/opt/venv/lib/python3.11/site-packages/pydispatch/dask_adapter/transfer.py",
        "pydispatch.dask_adapter.transfer", "__call__", 67,
        frame(str(user), "__pydispatch_run__", "boom", 2, None),
    )  # fmt: skip
    text = format_user_frames(Traceback.from_dict(remote).as_traceback(), remote=True)
    assert text == f"  File \"{user}\", line 2, in boom\n    raise ValueError('x')\n"


@pytest.mark.parametrize("executor", [AsyncExecutor, ParallelExecutor])
def test_local_traces_leave_out_pydispatchs_frames(
    executor: type[Executor],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`DependencyError.trace` of a run in threads or in worker processes: the user's frames."""
    monkeypatch.setattr(run_command, "_open_executor", lambda args: executor())
    path = tmp_path / "fail.py"
    path.write_text(NESTED_FAILURE)
    assert main_exit_code(["run", str(path), "--json", "--quiet"]) == 1
    (boom,) = json.loads(capsys.readouterr().out)["outputs"]
    trace = boom["error"]["traceback"]
    assert "pydispatch" not in trace and "<dynamic-code>" not in trace
    lines = [line.strip() for line in trace.splitlines()]
    for number, name, source in NESTED_FRAMES:
        assert f'File "{path}", line {number}, in {name}' in lines
        assert source in lines


@pytest.mark.parametrize(
    ("example", "expected"), [("quickstart", "max = 4"), ("do", "total = 357")]
)
def test_examples_on_a_scheduler(dask_cluster: Cluster, example: str, expected: str) -> None:
    proc = pydispatch("run", f"examples/{example}.py", "--scheduler", dask_cluster.address)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
    assert f"pydispatch: scheduler {dask_cluster.address}" in proc.stderr


def test_failed_output_exits_1_with_label_exception_and_remote_traceback(
    dask_cluster: Cluster, failing_file: Path
) -> None:
    proc = pydispatch("run", str(failing_file), "--scheduler", dask_cluster.address, "--quiet")
    assert proc.returncode == 1
    assert proc.stdout.strip() == "three = 3"
    err = proc.stderr
    assert "FAILED boom: ValueError: bad value 3" in err
    assert "FAILED max: did not run: its dependency 'boom' failed with ValueError" in err
    assert "traceback of 'boom'" in err and "in boom" in err
    assert err.count("Traceback (most recent call last)") == 1  # once per failing node
    assert "pydispatch:" not in err  # --quiet: no progress, no informational lines


def test_json_reports_each_output(dask_cluster: Cluster, failing_file: Path) -> None:
    proc = pydispatch("run", str(failing_file), "--scheduler", dask_cluster.address, "--json")
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert document["ok"] is False
    three, boom, maximum = document["outputs"]
    assert three == {"label": "three", "ok": True, "value": 3}
    assert boom["ok"] is False and boom["error"]["type"] == "ValueError"
    assert boom["error"]["message"] == "bad value 3"
    assert "in boom" in boom["error"]["traceback"]
    assert maximum["error"]["failed_node"] == "boom"


def test_run_timeout_exits_1_saying_what_it_waited_for(dask_cluster: Cluster) -> None:
    proc = pydispatch(
        "run", "examples/cluster.py", "--scheduler", dask_cluster.address, "--timeout", "0.3",
        "--json", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert document["ok"] is False and document["outputs"] == []
    assert "did not finish within timeout=0.3s" in document["error"]


def test_unreachable_scheduler_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    code = main_exit_code(
        ["run", "examples/quickstart.py", "--scheduler", f"127.0.0.1:{port}", "--timeout", "2"]
    )
    assert code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pydispatch run: error:")
    assert f"127.0.0.1:{port}" in lines[0]
    assert captured.out == ""


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_exit_code(["run", "no/such/file.py"]) == 2
    assert capsys.readouterr().err == (
        "pydispatch run: error: 'no/such/file.py' does not exist; give the path of a Python file\n"
    )


def main_exit_code(args: list[str]) -> int | str | None:
    """`cli.main(args)` in this process; argparse's usage errors exit through SystemExit."""
    try:
        return cli.main(args)
    except SystemExit as done:
        return done.code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "examples/quickstart.py", "--scheduler", "host:notaport"], "bad --scheduler"),
        (["run", "examples/quickstart.py", "--workers", "0"], "must be 1 or more"),
        (["run", "examples/quickstart.py", "--timeout", "-1"], "must be more than 0 seconds"),
        (["run", "examples/quickstart.py", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "examples/quickstart.py", "--visualize", "x.bmp"], "give a file ending in"),
        (["run", "examples/quickstart.py", "--scheduler", "h:1", "--workers", "2"], "embedded"),
        (["run", "examples/quickstart.py", "--tls-cert", "/no/cert.pem"], "no such file"),
        (["worker", "host:notaport"], "bad scheduler address"),
        (["worker", "--nworkers", "-1"], "must be 1 or more"),
        (["worker", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_invocations_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_exit_code(args) == 2
    assert message in capsys.readouterr().err


def test_file_defining_no_graph_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nothing.py"
    path.write_text("x = 1\n")
    assert main_exit_code(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "defines no graph" in err


def test_file_raising_shows_its_traceback_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "raising.py"
    path.write_text('raise RuntimeError("oops")\n')
    assert main_exit_code(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n  File ")
    assert str(path) in err and "RuntimeError: oops" in err
    assert "runpy" not in err and "pydispatch/cli.py" not in err


def test_version() -> None:
    proc = pydispatch("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"pydispatch {__version__}"
    script = shutil.which("pydispatch")  # the console script, when installed
    if script is not None:
        done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == f"pydispatch {__version__}"


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "run": ["--scheduler", "--workers", "--threads", "--timeout", "--json", "--visualize",
                "--quiet", "outputs", "main()", "exit codes"],
        "worker": ["--nworkers", "--nthreads", "--julia", "--tls-ca-file", "--tls-cert",
                   "--tls-key", "--name", "--death-timeout"],
    }  # fmt: skip
    for command, words in expected.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert all(word in text for word in words), (command, text)


# -- pydispatch worker ------------------------------------------------------------------


def _run_worker_args(*args: str) -> list[str]:
    parsed = cli.build_parser().parse_args(["worker", *args])
    parsed.passthrough = []
    return cli.dask_worker_args(parsed)


def test_worker_options_translate_to_dask_worker(tmp_path: Path) -> None:
    assert _run_worker_args() == ["tcp://127.0.0.1:8786", "--nworkers", "1"]
    assert _run_worker_args("[::1]:9000", "--nworkers", "3", "--nthreads", "2", "--name", "w") == [
        "tcp://[::1]:9000", "--nworkers", "3", "--nthreads", "2", "--name", "w",
    ]  # fmt: skip
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    for f in (ca, cert, key):
        f.write_text("x")
    tls = _run_worker_args("10.0.0.5:8786", "--tls-ca-file", str(ca), "--tls-cert", str(cert),
                           "--tls-key", str(key))  # fmt: skip
    assert tls[0] == "tls://10.0.0.5:8786"
    assert tls[-6:] == ["--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]
    with pytest.raises(cli.CommandError, match="need a tls:// scheduler address"):
        _run_worker_args("tcp://10.0.0.5:8786", "--tls-ca-file", str(ca), "--tls-cert", str(cert))
    with pytest.raises(cli.CommandError, match="no such file"):
        _run_worker_args("--tls-ca-file", str(tmp_path / "missing.pem"), "--tls-cert", str(cert))


def test_worker_julia_adds_the_preload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYDISPATCH_JULIA_BACKEND", "fake")
    assert _run_worker_args("--julia")[-2:] == ["--preload", "pydispatch.julia"]


def test_worker_dry_run_and_passthrough(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["worker", "127.0.0.1:9999", "--dry-run", "--", "--memory-limit", "1GB"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out == "dask worker tcp://127.0.0.1:9999 --nworkers 1 --memory-limit 1GB\n"


@pytest.fixture
def worker_command(scheduler_only: Cluster) -> Iterator[tuple[Cluster, subprocess.Popen[bytes]]]:
    """`pydispatch worker` for the scheduler; it and its worker processes ended by PID."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydispatch", "worker", scheduler_only.address,
         "--nworkers", "1", "--nthreads", "1", "--name", "cli-worker",
         "--death-timeout", "60", "--", "--no-dashboard", "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        wait_until(
            lambda: proc.poll() is not None or scheduler_only.worker_count() == 1,
            60,
            "the worker started by `pydispatch worker` to join",
        )
        assert proc.poll() is None, "pydispatch worker exited while starting"
        children = psutil.Process(proc.pid).children(recursive=True)
        yield scheduler_only, proc
    finally:
        end_process(proc, signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except psutil.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass


def test_worker_command_serves_a_run(
    worker_command: tuple[Cluster, subprocess.Popen[bytes]],
) -> None:
    cluster, proc = worker_command
    assert psutil.Process(proc.pid).children(), "the nanny starts the worker in a child process"
    run = pydispatch("run", "examples/do.py", "--scheduler", cluster.address, "--quiet")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "total = 357"
    end_process(proc, signal.SIGTERM)
    assert proc.returncode == 0
    wait_until(lambda: cluster.worker_count() == 0, 30, "the worker to leave the scheduler")


# -- the graph-file convention (in-process) ---------------------------------------------


def test_graph_file_conventions(tmp_path: Path) -> None:
    cases = {
        "node.py": "from pydispatch import DataNode\noutputs = DataNode(1)\n",
        "graph.py": "from pydispatch import DataNode, DispatchGraph, Op\n"
        "outputs = DispatchGraph(Op(abs, DataNode(-1)))\n",
        "main.py": "from pydispatch import DataNode\n"
        "def main():\n    return [DataNode(1), DataNode(2)]\n",
        "both.py": "from pydispatch import DataNode\noutputs = [DataNode(1)]\n"
        "def main():\n    raise AssertionError('outputs wins')\n",
        "guarded.py": "from pydispatch import DataNode\noutputs = [DataNode(1)]\n"
        "if __name__ == '__main__':\n    raise AssertionError('must not run')\n",
    }
    counts = {"node.py": 1, "graph.py": 1, "main.py": 2, "both.py": 1, "guarded.py": 1}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        loaded = load_graph_file(tmp_path / name)
        assert len(loaded.outputs) == counts[name], name
        assert isinstance(loaded.graph(), DispatchGraph)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.py", "", "defines no graph"),
        ("none.py", "def main():\n    pass\n", "main() returned a value that is None"),
        ("ints.py", "outputs = [1, 2]\n", "`outputs` is [1, 2], not a graph"),
        ("empty_list.py", "outputs = []\n", "non-empty list of nodes"),
        ("notes.txt", "", "is neither a Python (.py) nor a Julia (.jl) file"),
    ],
)
def test_graph_file_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(GraphFileError, match=re.escape(message)):
        load_graph_file(tmp_path / name)


@pytest.mark.skipif(
    importlib.util.find_spec("juliacall") is not None,
    reason="juliacall is installed here, so a Julia file would start Julia",
)
def test_a_julia_file_without_juliacall_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "graph.jl").write_text("import Dispatcher\noutputs = [Dispatcher.Op(max, 3, 4)]\n")
    with pytest.raises(GraphFileError, match=re.escape('pip install -e ".[julia]"')):
        load_graph_file(tmp_path / "graph.jl", loaders={".jl": load_julia_graph})


def test_sibling_modules_are_importable_and_shipped_by_value(tmp_path: Path) -> None:
    import cloudpickle

    (tmp_path / "helpers_for_cli_test.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "job.py").write_text(
        "from helpers_for_cli_test import double\nfrom pydispatch import Op\n"
        "outputs = [Op(double, 21)]\n"
    )
    loaded = load_graph_file(tmp_path / "job.py")
    assert AsyncExecutor().run(loaded.outputs)[0].unwrap().result() == 42
    module = sys.modules["helpers_for_cli_test"]
    assert module.__name__ in cloudpickle.list_registry_pickle_by_value()
    cloudpickle.unregister_pickle_by_value(module)
    del sys.modules["helpers_for_cli_test"]


@needs_dot
def test_visualize_draws_an_svg_with_the_states(
    tmp_path: Path, failing_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_command, "_open_executor", lambda args: AsyncExecutor())
    picture = tmp_path / "run.svg"
    assert main_exit_code(["run", str(failing_file), "--quiet", "--visualize", str(picture)]) == 1
    texts = {t.text for t in ET.parse(picture).iter(f"{SVG}text")}
    assert {"three", "boom", "max"} <= texts
    assert any("red: failed" in str(t) for t in texts)


def test_quiet_prints_only_the_outputs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run_command, "_open_executor", lambda args: AsyncExecutor())
    assert cli.main(["run", str(EXAMPLES / "quickstart.py"), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("max = 4\n", "")
    assert cli.main(["run", str(EXAMPLES / "quickstart.py")]) == 0
    out, err = capsys.readouterr()
    assert out == "max = 4\n"
    assert "pydispatch: running 3 nodes" in err and "3/3 finished" in err
