"""`visualize`: SVG/PNG/dot pictures with labels, edges and after a run the node states."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markers import needs_dot
from tasks import boom, three

from pydispatch import AsyncExecutor, CollectNode, DataNode, DispatchGraph, Op
from pydispatch.visualize import (
    DONE,
    FAILED,
    NOT_RUN,
    VisualizationError,
    check_can_draw,
    node_state,
    visualize,
)

SVG = "{http://www.w3.org/2000/svg}"
COLOURS = {DONE: "#b7e4a7", FAILED: "#f5a3a3", NOT_RUN: "#eeeeee"}


def _graph() -> tuple[DispatchGraph, dict[str, Op]]:
    a = Op(three)
    b = Op(lambda: 4)
    c = Op(max, a, b)
    bad = Op(boom, c)
    after = Op(abs, bad)
    collected = CollectNode([c, a], label="both & <more>")
    nodes = {"three": a, "<lambda>": b, "max": c, "boom": bad, "abs": after}
    return DispatchGraph([after, collected]), nodes


def _node_fills(path: Path) -> dict[str, str]:
    """Each drawn node's first text line -> its fill colour."""
    fills = {}
    for group in ET.parse(path).iter(f"{SVG}g"):
        if group.get("class") != "node":
            continue
        shape = next(e for e in group.iter() if e.tag in {f"{SVG}polygon", f"{SVG}ellipse"})
        text = next(group.iter(f"{SVG}text")).text
        fills[str(text)] = str(shape.get("fill"))
    return fills


@needs_dot
def test_svg_holds_every_label_and_edge(tmp_path: Path) -> None:
    graph, _ = _graph()
    path = visualize(graph, tmp_path / "g.svg")
    root = ET.parse(path).getroot()  # valid XML
    assert root.tag == f"{SVG}svg"
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {n.label for n in graph.nodes()} <= texts
    edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    assert len(edges) == len(graph.edges())


@needs_dot
def test_before_a_run_nodes_are_not_coloured(tmp_path: Path) -> None:
    graph, _ = _graph()
    fills = _node_fills(visualize(graph, tmp_path / "g.svg"))
    assert set(fills.values()) == {"#ffffff"}


@needs_dot
def test_after_a_run_each_node_has_its_state(tmp_path: Path) -> None:
    graph, nodes = _graph()
    AsyncExecutor().run(graph, throw_error=False)
    assert node_state(nodes["max"]) == DONE
    assert node_state(nodes["boom"]) == FAILED
    assert node_state(nodes["abs"]) == NOT_RUN  # its dependency failed
    fills = _node_fills(visualize(graph, tmp_path / "g.svg"))
    assert fills["three"] == fills["max"] == COLOURS[DONE]
    assert fills["boom"] == COLOURS[FAILED]
    assert fills["abs"] == COLOURS[NOT_RUN]
    overridden = visualize(graph, tmp_path / "o.svg", states={nodes["max"]: FAILED})
    assert _node_fills(overridden)["max"] == COLOURS[FAILED]


@needs_dot
def test_png_pdf_and_dot_source(tmp_path: Path) -> None:
    node = Op(max, DataNode(1), DataNode(2))
    assert visualize(node, tmp_path / "g.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert visualize(node, tmp_path / "g.pdf").read_bytes().startswith(b"%PDF")
    source = visualize([node], tmp_path / "g.dot").read_text()
    assert source.startswith("digraph pydispatch {") and "max" in source


def test_bad_paths_and_states(tmp_path: Path) -> None:
    node = DataNode(1)
    with pytest.raises(ValueError, match=r"give a file ending in \.svg"):
        visualize(node, tmp_path / "g.bmp")
    with pytest.raises(VisualizationError, match="does not exist"):
        check_can_draw(tmp_path / "missing" / "g.dot")  # no `dot` needed
    with pytest.raises(ValueError, match="states are one of"):
        visualize(node, tmp_path / "g.svg", states={node: "ok"})


def test_missing_dot_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    with pytest.raises(VisualizationError, match="apt-get install graphviz"):
        check_can_draw(tmp_path / "g.svg")
    with pytest.raises(VisualizationError, match="apt-get install graphviz"):
        visualize(DataNode(1), tmp_path / "g.svg")
    assert visualize(DataNode(1), tmp_path / "g.gv").exists()  # source needs no `dot`
