"""pydispatch in Jupyter: graph pictures, HTML summaries and progress in a cell.

The reprs are called as plain methods; progress runs inside a real IPython
shell that is made to look like a kernel, and its displays are captured.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from markers import needs_dot
from real_cluster import Cluster

from pydispatch import AsyncExecutor, CollectNode, DaskExecutor, DispatchGraph, Op
from pydispatch.notebook import NotebookProgress, graph_text, in_notebook
from pydispatch.progress import make_progress
from pydispatch.progress_display import TerminalProgress

SVG = "{http://www.w3.org/2000/svg}"


def three() -> int:
    return 3


def boom(x: int) -> int:
    raise ValueError(f"bad {x}")


def _graph() -> DispatchGraph:
    a = Op(three)
    c = Op(max, a, 4)
    bad = Op(boom, c)
    return DispatchGraph([Op(abs, bad), CollectNode([c, a], label="both")])


@needs_dot
def test_graph_shows_as_an_svg_picture() -> None:
    graph = _graph()
    html = graph._repr_html_()
    svg = html[html.index("<svg") : html.rindex("</svg>") + len("</svg>")]
    texts = {t.text for t in ET.fromstring(svg).iter(f"{SVG}text")}
    assert {"three", "max", "boom", "abs", "both"} <= texts


def test_without_dot_the_graph_shows_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    graph = _graph()
    html = graph._repr_html_()
    assert "<svg" not in html and "<pre>" in html
    assert "apt-get install graphviz" in html and "brew install graphviz" in html
    assert "max &lt;- three" in html  # HTML-escaped text form
    AsyncExecutor().run(graph, throw_error=False)
    lines = graph_text(graph).splitlines()
    assert lines[0] == "DispatchGraph: 5 nodes, 5 edges"
    assert "  boom <- max  [failed]" in lines and "  abs <- boom  [not run]" in lines
    assert "  max <- three  [done]" in lines


def _cells(html: str) -> dict[str, str]:
    """The summary table's rows: header -> text (tags removed)."""
    rows = re.findall(r"<th[^>]*>(.*?)</th><td[^>]*>(.*?)</td>", html)
    return {name: re.sub(r"<[^>]+>", "", value) for name, value in rows}


def test_summaries_of_a_dask_run_and_executor(dask_cluster: Cluster) -> None:
    with DaskExecutor(dask_cluster.address) as executor:
        results = executor.run(_graph(), throw_error=False)
        assert isinstance(results, list) and len(results) == 2
        run = _cells(results._repr_html_())
        assert run["outputs"] == "2 (1 failed)"
        assert run["nodes"] == "5 nodes: 3 done, 1 failed, 1 not run"
        assert run["dashboard"].startswith("unavailable: the scheduler at ")
        summary = executor._repr_html_()
        assert "<strong>DaskExecutor</strong>" in summary
        cells = _cells(summary)
        assert cells["scheduler"] == dask_cluster.address
        assert cells["last run"] == "5 nodes: 3 done, 1 failed, 1 not run"
        assert "serves no dashboard" in cells["dashboard"]


def test_summaries_of_a_local_run_have_no_dashboard() -> None:
    executor = AsyncExecutor()
    assert "last run" not in _cells(executor._repr_html_())
    results = executor.run([Op(three)])
    cells = _cells(results._repr_html_())
    assert cells == {"outputs": "1", "nodes": "1 node: 1 done"}
    assert _cells(executor._repr_html_())["last run"] == "1 node: 1 done"


@pytest.fixture
def kernel_shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A real IPython shell that looks like a Jupyter kernel's (as `in_notebook` checks)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    shell = InteractiveShell.instance()
    monkeypatch.setitem(shell.config, "IPKernelApp", Config())
    yield shell
    InteractiveShell.clear_instance()


def test_notebook_detection(kernel_shell: object, monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_notebook()
    assert isinstance(make_progress(True), NotebookProgress)
    monkeypatch.delitem(kernel_shell.config, "IPKernelApp")  # type: ignore[attr-defined]
    assert not in_notebook()  # a terminal IPython is no notebook
    assert isinstance(make_progress(True), TerminalProgress)


def test_progress_true_in_a_notebook_updates_one_display_in_the_cell(
    kernel_shell: object, dask_cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ipywidgets' bar: an HTML line shown once, then updated in place."""
    from IPython.utils.capture import capture_output

    with capture_output() as cell, DaskExecutor(dask_cluster.address) as executor:
        executor.run(_graph(), throw_error=False, progress=NotebookProgress(widgets=False))
    first, *updates = cell.outputs
    ids = {o.transient["display_id"] for o in cell.outputs}
    assert len(ids) == 1 and not first.update and updates and all(u.update for u in updates)
    assert re.search(r"0/5 nodes, [\d.]+s elapsed", first.data["text/html"])
    assert re.search(r"5/5 nodes, .*2 failed.*, [\d.]+s elapsed", updates[-1].data["text/html"])
    assert capsys.readouterr().err == ""  # nothing on the terminal display


def test_progress_true_in_a_notebook_uses_an_ipywidgets_bar(
    kernel_shell: object, dask_cluster: Cluster
) -> None:
    ipywidgets = pytest.importorskip("ipywidgets")
    from IPython.utils.capture import capture_output

    progress = make_progress(True)
    assert isinstance(progress, NotebookProgress)
    with capture_output() as cell, DaskExecutor(dask_cluster.address) as executor:
        executor.run(_graph(), throw_error=False, progress=progress)
    (shown,) = cell.outputs
    assert "application/vnd.jupyter.widget-view+json" in shown.data
    box = progress._bar
    assert isinstance(box, ipywidgets.IntProgress)
    assert (box.value, box.max, box.bar_style) == (5, 5, "danger")
    assert "5/5 nodes" in progress._label.value and "2 failed" in progress._label.value
