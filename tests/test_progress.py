"""`TerminalProgress`: plain lines off a terminal, one live line on it, thread safety."""

from __future__ import annotations

import io
import re
import threading

import pytest

from pydispatch import AsyncExecutor, DataNode, DispatchNode, Op
from pydispatch.plan import Plan
from pydispatch.progress_display import TerminalProgress


def _plan(n: int) -> Plan:
    return Plan.build([DataNode(i) for i in range(n)])


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, tty=False, interval=1000)
    plan = _plan(3)
    progress.start(plan)
    for node in plan.order:
        progress.node_finished(node, node is not plan.order[1])
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "pydispatch: running 3 nodes"
    assert re.fullmatch(r"pydispatch: 3/3 finished, 1 failed, \d+\.\ds elapsed", lines[-1])
    # The interval is long: no periodic lines between the start and the summary.
    assert all("done" in line for line in lines[1:-1]) and len(lines) <= 3
    assert "\r" not in out.getvalue()


def test_periodic_lines_follow_the_interval() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, tty=False, interval=0.01)
    plan = _plan(5)
    progress.start(plan)
    for node in plan.order:
        threading.Event().wait(0.02)
        progress.node_finished(node, True)
    progress.finish()
    middle = out.getvalue().splitlines()[1:-1]
    assert middle, out.getvalue()
    assert all(re.fullmatch(r"pydispatch: \d/5 done, \d+\.\ds elapsed", ln) for ln in middle)


def test_live_line_on_a_terminal() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, tty=True)
    plan = _plan(4)
    progress.start(plan)
    for node in plan.order:
        progress.node_finished(node, False)
    progress.finish()
    text = out.getvalue()
    assert text.startswith("\r\x1b[K") and text.endswith("\n") and text.count("\n") == 1
    last = text.rstrip("\n").split("\r\x1b[K")[-1]
    assert re.fullmatch(r"pydispatch \[#{24}\] 4/4  4 failed  \d+\.\ds", last)


def test_node_finished_from_many_threads_counts_every_node() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, tty=False, interval=0.001)
    plan = _plan(8000)
    progress.start(plan)
    chunks = [plan.order[i::8] for i in range(8)]

    def report(chunk: list[DispatchNode]) -> None:
        for node in chunk:
            progress.node_finished(node, True)

    threads = [threading.Thread(target=report, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    progress.finish()
    assert (progress.done, progress.failed) == (8000, 0)
    assert out.getvalue().splitlines()[-1].startswith("pydispatch: 8000/8000 finished")


def test_finish_twice_and_events_after_finish_are_ignored() -> None:
    out = io.StringIO()
    progress = TerminalProgress(out, tty=False)
    plan = _plan(1)
    progress.start(plan)
    progress.finish()
    progress.finish()
    progress.node_finished(plan.order[0], True)
    assert out.getvalue().count("finished") == 1


def test_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval must be"):
        TerminalProgress(io.StringIO(), interval=0)


def test_run_progress_true_shows_the_display(capsys: pytest.CaptureFixture[str]) -> None:
    node = Op(max, DataNode(3), DataNode(4))
    AsyncExecutor().run([node], progress=True)
    err = capsys.readouterr().err
    assert "pydispatch: running 3 nodes" in err and "3/3 finished" in err
