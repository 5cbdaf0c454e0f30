"""Pictures of dispatch graphs (graphviz): labels, edges and, after a run, states.

`visualize(graph, "graph.svg")` writes an SVG, PNG or PDF (by the file's
suffix; ``.dot``/``.gv`` writes the graphviz source). Each node shows its
label; after a run it is coloured by its state:

* ``done`` (green): it ran and has a value;
* ``failed`` (red): its own code raised;
* ``not run`` (grey, dashed): never run, or skipped because a dependency failed.

Drawing needs the ``graphviz`` Python package and graphviz's ``dot`` program
(Debian/Ubuntu: ``apt-get install graphviz``; macOS: ``brew install graphviz``).
"""

from __future__ import annotations

import os
import reprlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DependencyError, VisualizationError
from .graph import (
    CollectNode,
    DataNode,
    DispatchGraph,
    DispatchNode,
    IndexNode,
    register_drawer,
)

if TYPE_CHECKING:
    import graphviz

DONE = "done"
FAILED = "failed"
NOT_RUN = "not run"
STATES = (DONE, FAILED, NOT_RUN)

_STYLE = {
    DONE: {"fillcolor": "#b7e4a7", "color": "#2e7d32", "style": "filled"},
    FAILED: {"fillcolor": "#f5a3a3", "color": "#c62828", "style": "filled,bold"},
    NOT_RUN: {"fillcolor": "#eeeeee", "color": "#9e9e9e", "style": "filled,dashed"},
}
_NEUTRAL = {"fillcolor": "#ffffff", "color": "#424242", "style": "filled"}
_SHAPE = {DataNode: "ellipse", IndexNode: "box", CollectNode: "folder"}
_RENDERED = ("svg", "png", "pdf")
_SOURCE = ("dot", "gv")
_INSTALL_DOT = (
    "install graphviz's `dot` program (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz; conda: conda install graphviz)"
)


def node_state(node: DispatchNode) -> str:
    """The node's state after its last run: ``"done"``, ``"failed"`` or ``"not run"``.

    Uses what the executor left on the node; only when that says nothing
    cheaper does it call ``node.result()`` (which may fetch the value).
    """
    if not node.done():
        return NOT_RUN
    outcome: Any = node.outcome
    error = getattr(outcome, "error", None)
    if isinstance(error, BaseException):
        return _failure_state(node, error)
    status = getattr(getattr(outcome, "future", None), "status", None)
    if status == "finished" or (status is None and hasattr(outcome, "error")):
        return DONE
    try:
        node.result(timeout=30)
    except Exception as err:
        return _failure_state(node, err)
    return DONE


def _failure_state(node: DispatchNode, error: BaseException) -> str:
    """FAILED when the node's own code raised; NOT_RUN when a dependency's failure stopped it."""
    if isinstance(error, DependencyError) and error.failed_node not in (None, node):
        return NOT_RUN
    return FAILED


def _as_graph(graph: DispatchGraph | DispatchNode | Iterable[DispatchNode]) -> DispatchGraph:
    if isinstance(graph, DispatchGraph):
        return graph
    return DispatchGraph(graph)


def _label(node: DispatchNode) -> str:
    import graphviz

    text = graphviz.escape(node.label)
    if isinstance(node, DataNode):
        short = reprlib.Repr()
        short.maxstring = short.maxother = 24
        text = graphviz.escape(f"{node.label}\n{short.repr(node.value)}").replace("\n", "\\n")
    return graphviz.nohtml(text)


def to_dot(
    graph: DispatchGraph | DispatchNode | Iterable[DispatchNode],
    states: Mapping[DispatchNode, str] | None = None,
    *,
    show_states: bool | None = None,
    rankdir: str = "TB",
) -> graphviz.Digraph:
    """The graphviz `Digraph` of `graph`.

    `states` maps nodes to one of `STATES`; nodes it leaves out get
    `node_state(node)`. `show_states=None` colours the nodes only when some
    node of the graph has run (or `states` is given).
    """
    try:
        import graphviz
    except ImportError:
        raise VisualizationError(
            "drawing graphs needs the `graphviz` Python package: pip install graphviz"
        ) from None
    dgraph = _as_graph(graph)
    nodes = dgraph.nodes()
    given = dict(states or {})
    for node, wanted in given.items():
        if wanted not in STATES:
            raise ValueError(
                f"the state of {node!r} is {wanted!r}; states are one of {', '.join(STATES)}"
            )
    if show_states is None:
        show_states = bool(given) or any(n.done() for n in nodes)
    dot = graphviz.Digraph("pydispatch", graph_attr={"rankdir": rankdir, "fontname": "Helvetica"})
    dot.attr("node", fontname="Helvetica", fontsize="11", penwidth="1.2")
    dot.attr("edge", color="#616161", arrowsize="0.7")
    for index, node in enumerate(nodes):
        state: str | None = None
        if show_states:
            state = given.get(node) or node_state(node)
        style = _STYLE[state] if state is not None else _NEUTRAL
        tooltip = node.label if state is None else f"{node.label}: {state}"
        dot.node(
            f"n{index}",
            _label(node),
            shape=_SHAPE.get(type(node), "box"),
            tooltip=graphviz.escape(tooltip),
            **style,
        )
    for parent, child in dgraph.edges():
        dot.edge(f"n{dgraph.node_id(parent)}", f"n{dgraph.node_id(child)}")
    if show_states:
        dot.attr(label="green: done   red: failed   grey: not run", fontsize="10", labelloc="b")
    return dot


def output_format(path: str | os.PathLike[str]) -> str:
    """The format `visualize` writes for `path` (its suffix); `ValueError` if unsupported."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in _RENDERED + _SOURCE:
        known = ", ".join("." + s for s in _RENDERED + _SOURCE)
        raise ValueError(f"cannot draw the graph as {str(path)!r}: give a file ending in {known}")
    return suffix


def check_can_draw(path: str | os.PathLike[str]) -> None:
    """Raise `ValueError`/`VisualizationError` now if `visualize(..., path)` would fail to draw.

    Checks the suffix, the `graphviz` package, the `dot` program and that the
    directory exists, so a long run does not end in a drawing error.
    """
    fmt = output_format(path)
    try:
        import graphviz  # noqa: F401
    except ImportError:
        raise VisualizationError(
            "drawing graphs needs the `graphviz` Python package: pip install graphviz"
        ) from None
    if fmt in _RENDERED and shutil.which("dot") is None:
        raise VisualizationError(
            f"cannot draw the graph: `dot` was not found on PATH; {_INSTALL_DOT}"
        )
    parent = Path(path).parent
    if not parent.is_dir():
        raise VisualizationError(
            f"cannot write {str(path)!r}: the directory {str(parent)!r} does not exist"
        )


def visualize(
    graph: DispatchGraph | DispatchNode | Iterable[DispatchNode],
    path: str | os.PathLike[str],
    states: Mapping[DispatchNode, str] | None = None,
    *,
    show_states: bool | None = None,
    rankdir: str = "TB",
) -> Path:
    """Draw `graph` into `path` (SVG, PNG or PDF by suffix; .dot/.gv: the source); returns the path.

    After a run each node is coloured by its state (see `node_state`);
    `states` overrides it per node. Raises `VisualizationError` when graphviz
    or its `dot` program is missing, saying how to install it.
    """
    import graphviz

    fmt = output_format(path)
    dot = to_dot(graph, states, show_states=show_states, rankdir=rankdir)
    target = Path(path)
    if fmt in _SOURCE:
        data = dot.source.encode()
    else:
        try:
            data = dot.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise VisualizationError(
                f"cannot draw the graph: graphviz's `dot` program was not found; {_INSTALL_DOT}"
            ) from None
        except graphviz.CalledProcessError as err:
            raise VisualizationError(f"graphviz `dot` failed to draw the graph: {err}") from err
    try:
        target.write_bytes(data)
    except OSError as err:
        raise VisualizationError(f"cannot write the picture to {str(target)!r}: {err}") from err
    return target


register_drawer(visualize)
