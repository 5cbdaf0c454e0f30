"""Progress of a run, as the executors report it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .graph import DispatchNode
    from .plan import Plan


class Progress(Protocol):
    """Receives a run's events; `run(progress=...)` accepts one."""

    def start(self, plan: Plan) -> None: ...

    def node_finished(self, node: DispatchNode, ok: bool) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """Reports nothing."""

    def start(self, plan: Plan) -> None:
        pass

    def node_finished(self, node: DispatchNode, ok: bool) -> None:
        pass

    def finish(self) -> None:
        pass


def make_progress(progress: bool | Progress) -> Progress:
    """The reporter for `run(progress=...)`: True for the terminal display (in a Jupyter
    kernel, the notebook's)."""
    if progress is False or progress is None:
        return NoProgress()
    if progress is True:
        from .notebook import NotebookProgress, in_notebook

        if in_notebook():
            return NotebookProgress()
        from .progress_display import TerminalProgress

        return TerminalProgress()
    return progress
