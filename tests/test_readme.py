"""README.md stays true: its required lines are there and its Python examples run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from real_cluster import Cluster

README = (Path(__file__).parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def block(containing: str) -> str:
    (found,) = [b for b in BLOCKS if containing in b]
    return found


def run_python(code: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize(
    "line",
    [
        'python -m pip install -e ".[test]"',
        "pydispatch run examples/cluster.py",
        "python -m pytest",
    ],
)
def test_required_lines_are_verbatim(line: str) -> None:
    assert line in README.splitlines() or f"{line}\n" in README


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text().splitlines()
    assert 'python -m pip install -e ".[test]"' in ci
    assert ci[-1] == "python -m pytest"


def test_opening_example_runs_on_an_embedded_cluster() -> None:
    assert run_python(block("DaskExecutor.local()")).split() == ["4"]


def test_python_quick_start_runs(dask_cluster: Cluster) -> None:
    code = block("quotient, remainder").replace('"127.0.0.1:8786"', repr(dask_cluster.address))
    assert run_python(code).strip() == "[1, 2]"


def test_client_example_runs(dask_cluster: Cluster) -> None:
    code = block("client.replicate").replace('"127.0.0.1:8786"', repr(dask_cluster.address))
    lines = run_python(code).splitlines()
    assert lines[0] == "2 [2]"
    assert lines[1].startswith("int-")


def test_existing_cluster_example_runs() -> None:
    assert run_python(block("distributed.LocalCluster(")).split() == ["4", "3"]


def test_annotations_example_builds_annotated_nodes() -> None:
    code = block("with annotate(") + ("\nprint(train(1).annotations(), loaded.annotations())\n")
    out = run_python(code)
    assert "{'resources': {'GPU': 1}, 'priority': 10}" in out
    assert "{'priority': 5, 'workers': ['tcp://10.0.0.7:40000'], 'retries': 2}" in out
