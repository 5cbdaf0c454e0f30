"""Progress of a run, as the executors report it."""

from __future__ import annotations

from collections.abc import Callable
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


_displays: list[Callable[[], Progress]] = []


def register_display(factory: Callable[[], Progress]) -> None:
    """Make `factory` the display that `run(progress=True)` shows (the last one wins).

    The core knows no display: the tools register theirs (the terminal display,
    and in a notebook the notebook one) when `pydispatch` is imported.
    """
    _displays.append(factory)


def make_progress(progress: bool | Progress) -> Progress:
    """The reporter for `run(progress=...)`: True for the registered display."""
    if progress is False or progress is None:
        return NoProgress()
    if progress is True:
        if not _displays:
            return NoProgress()
        return _displays[-1]()
    return progress
