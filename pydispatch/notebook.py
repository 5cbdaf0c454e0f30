"""pydispatch in Jupyter: graphs as pictures, short HTML summaries, live progress in a cell.

* `DispatchGraph` shows itself as an SVG picture (graphviz), or as a text
  listing of its nodes where graphviz's `dot` is missing;
* a run's results (`RunResults`) and an executor show a short HTML summary:
  nodes by state (done, failed, not run) and the dask dashboard link;
* `run(..., progress=True)` in a notebook shows a progress bar in the cell
  (an ipywidgets bar when ipywidgets is installed, an updating HTML line
  otherwise) instead of writing to standard error.

This module uses only pydispatch's core (and `visualize` for pictures); it
never imports dask, and imports IPython only inside a running IPython.
"""

from __future__ import annotations

import html
import shutil
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .graph import DispatchGraph, DispatchNode, register_html
from .progress import Progress, register_display
from .progress_display import TerminalProgress
from .results import RunResults
from .visualize import DONE, FAILED, NOT_RUN, STATES, node_state, to_dot

if TYPE_CHECKING:
    from .plan import Plan

_COLOURS = {DONE: "#2e7d32", FAILED: "#c62828", NOT_RUN: "#757575"}
_REFRESH = 0.25  # seconds between two updates of a notebook progress display
_NO_DOT = (
    "graphviz's `dot` program is not installed (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz), so the graph is shown as text"
)


# -- graphs ---------------------------------------------------------------------------


def graph_svg(graph: DispatchGraph) -> str | None:
    """The graph drawn as SVG text; None when graphviz (or its `dot` program) is missing."""
    if shutil.which("dot") is None:
        return None
    try:
        svg = str(to_dot(graph).pipe(format="svg", encoding="utf-8"))
    except Exception:  # no graphviz package, or `dot` failed: the text form is shown
        return None
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg  # without the XML prolog, to sit inside HTML


def _state_note(node: DispatchNode, states: dict[DispatchNode, str] | None) -> str:
    return f"  [{states[node]}]" if states is not None else ""


def graph_text(graph: DispatchGraph) -> str:
    """The graph as text: a line per node, `label <- its dependencies`, states after a run."""
    nodes = graph.nodes()
    parents: dict[DispatchNode, list[DispatchNode]] = {node: [] for node in nodes}
    for parent, child in graph.edges():
        parents[child].append(parent)
    ran = any(node.done() for node in nodes)
    states = {node: node_state(node) for node in nodes} if ran else None
    lines = [f"DispatchGraph: {len(nodes)} nodes, {len(graph.edges())} edges"]
    for node in nodes:
        deps = ", ".join(p.label for p in parents[node])
        arrow = f" <- {deps}" if deps else ""
        lines.append(f"  {node.label}{arrow}{_state_note(node, states)}")
    return "\n".join(lines)


def graph_html(graph: DispatchGraph) -> str:
    """The graph as HTML: its SVG picture, or its text form saying how to get pictures."""
    svg = graph_svg(graph)
    if svg is not None:
        return f"<div>{svg}</div>"
    return (
        f"<pre>{html.escape(graph_text(graph))}</pre><p><small>{html.escape(_NO_DOT)}.</small></p>"
    )


# -- summaries --------------------------------------------------------------------------


def state_counts(nodes: Iterable[DispatchNode]) -> dict[str, int]:
    """How many of `nodes` are done, failed and not run (every state, in that order)."""
    counts = dict.fromkeys(STATES, 0)
    for node in nodes:
        counts[node_state(node)] += 1
    return counts


def _counts_html(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [
        f'<span style="color:{_COLOURS[state]}">{count} {state}</span>'
        for state, count in counts.items()
        if count or state == DONE
    ]
    return f"{total} node{'' if total == 1 else 's'}: " + ", ".join(parts)


def _dashboard_html(dashboard: Any) -> str:
    """A link to the live dashboard, or why there is none (a `Dashboard`, a link or None)."""
    if dashboard is None:
        return ""
    link = getattr(dashboard, "link", dashboard if isinstance(dashboard, str) else None)
    if link:
        ref = html.escape(link, quote=True)
        return f'<a href="{ref}" target="_blank">{html.escape(link)}</a>'
    problem = getattr(dashboard, "problem", None)
    return f"unavailable: {html.escape(str(problem))}" if problem else ""


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><th style="text-align:left">{html.escape(name)}</th>'
        f'<td style="text-align:left">{value}</td></tr>'
        for name, value in rows
        if value
    )
    return f"<div><strong>{html.escape(title)}</strong><table>{body}</table></div>"


def _dashboard_of(executor: Any) -> Any:
    """The executor's `Dashboard` (link or why none); None for executors without one."""
    try:
        return getattr(executor, "dashboard", None)
    except Exception:  # a summary never fails: no dashboard row then
        return None


def results_html(results: RunResults) -> str:
    """A run's summary: its outputs, the run's nodes by state, and the dashboard link."""
    failed = sum(r.is_error for r in results)
    outputs = f"{len(results)} ({failed} failed)" if failed else str(len(results))
    return _table(
        "pydispatch run",
        [
            ("outputs", outputs),
            ("nodes", _counts_html(state_counts(results.nodes))),
            ("dashboard", _dashboard_html(_dashboard_of(results.executor))),
        ],
    )


def executor_html(executor: Any) -> str:
    """An executor's summary: its kind, scheduler, dashboard link and its last run."""
    rows = [
        ("scheduler", html.escape(str(getattr(executor, "scheduler_address", "") or ""))),
        ("dashboard", _dashboard_html(_dashboard_of(executor))),
        ("retries", str(getattr(executor, "retries", ""))),
    ]
    last = getattr(executor, "last_run", None)
    if last is not None:
        rows.append(("last run", _counts_html(state_counts(last.nodes))))
    return _table(type(executor).__name__, rows)


def render_html(obj: Any) -> str | None:
    """The HTML Jupyter shows for a graph, a run's results or an executor; None otherwise."""
    if isinstance(obj, DispatchGraph):
        return graph_html(obj)
    if isinstance(obj, RunResults):
        return results_html(obj)
    if callable(getattr(obj, "run", None)):  # an executor (this layer cannot name the type)
        return executor_html(obj)
    return None


# -- progress in a notebook cell ---------------------------------------------------------


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (a notebook, JupyterLab, VS Code...)."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it already
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    if shell is None:
        return False
    return type(shell).__name__ == "ZMQInteractiveShell" or "IPKernelApp" in getattr(
        shell, "config", {}
    )


def progress_html(done: int, total: int, failed: int, elapsed: float) -> str:
    """One progress line as HTML: a bar, done/total, failures and elapsed time."""
    share = done / total if total else 1.0
    fail = f', <span style="color:{_COLOURS[FAILED]}">{failed} failed</span>' if failed else ""
    return (
        f'<div><progress value="{done}" max="{max(total, 1)}" style="width:20em"></progress> '
        f"{done}/{total} nodes{fail}, {elapsed:.1f}s elapsed ({share:.0%})</div>"
    )


class NotebookProgress:
    """Shows a run's progress in the notebook cell that runs it.

    With ipywidgets (when importable and `widgets` is not False) it is a live
    progress bar; otherwise an HTML line updated in place (IPython's
    `display(..., display_id=True)`). Executors may report from any thread.
    """

    def __init__(self, *, widgets: bool | None = None, refresh: float = _REFRESH):
        self.total = 0
        self.done = 0
        self.failed = 0
        self.refresh = refresh
        self._use_widgets = widgets
        self._lock = threading.Lock()
        self._started = 0.0
        self._shown_at = 0.0
        self._handle: Any = None
        self._bar: Any = None
        self._label: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._fallback: Any = None

    def start(self, plan: Plan) -> None:
        """A run of `plan` begins: show the display in the cell."""
        with self._lock:
            self.total = len(plan.order)
            self.done = self.failed = 0
            self._started = time.monotonic()
            self._stop.clear()
            try:
                self._open()
            except Exception:  # no usable IPython display: the plain display instead
                self._fallback = TerminalProgress()
        if self._fallback is not None:
            self._fallback.start(plan)
            return
        self._ticker = threading.Thread(
            target=self._tick, name="pydispatch-notebook-progress", daemon=True
        )
        self._ticker.start()

    def node_finished(self, node: DispatchNode, ok: bool) -> None:
        """One node finished (`ok` false: it failed or could not run)."""
        if self._fallback is not None:
            self._fallback.node_finished(node, ok)
            return
        with self._lock:
            self.done += 1
            self.failed += not ok
            if time.monotonic() - self._shown_at >= self.refresh:
                self._show()

    def finish(self) -> None:
        """The run ended: show the final state."""
        if self._fallback is not None:
            self._fallback.finish()
            return
        self._stop.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=2)
        with self._lock:
            self._show()
            if self._bar is not None:
                self._bar.bar_style = "danger" if self.failed else "success"

    def _open(self) -> None:
        from IPython.display import HTML, display

        widgets: Any = None
        if self._use_widgets is not False:
            try:
                import ipywidgets

                widgets = ipywidgets
            except ImportError:
                pass
        if widgets is not None:
            self._bar = widgets.IntProgress(value=0, min=0, max=max(self.total, 1))
            self._label = widgets.HTML()
            display(widgets.HBox([self._bar, self._label]))
            self._show()
        else:
            self._handle = display(HTML(self._html()), display_id=True)
            self._shown_at = time.monotonic()

    def _html(self) -> str:
        return progress_html(self.done, self.total, self.failed, time.monotonic() - self._started)

    def _show(self) -> None:
        """Update the display (call with the lock held)."""
        self._shown_at = time.monotonic()
        if self._bar is not None:
            self._bar.value = self.done
            self._label.value = self._html()
        elif self._handle is not None:
            from IPython.display import HTML

            self._handle.update(HTML(self._html()))

    def _tick(self) -> None:
        while not self._stop.wait(max(self.refresh, 0.5)):
            with self._lock:
                self._show()


def progress_display() -> Progress:
    """The display of `run(progress=True)`: in a notebook cell there, else the terminal's."""
    return NotebookProgress() if in_notebook() else TerminalProgress()


register_html(render_html)
register_display(progress_display)
