"""`TerminalProgress`: the progress display of `run(progress=True)` and `pydispatch run`.

On a terminal it keeps one line up to date (a bar, done/total, failures,
elapsed time). Anywhere else (a pipe, a CI log) it prints a plain line at
most every `interval` seconds while something changed, and a final summary
line, so logs stay short and readable. Executors may report from any thread.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .progress import register_display

if TYPE_CHECKING:
    from .graph import DispatchNode
    from .plan import Plan

_BAR_WIDTH = 24
_TTY_REFRESH = 0.1  # seconds between redraws of the live line
_HEARTBEAT = 30.0  # seconds between plain lines when nothing changes


def _format_elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class TerminalProgress:
    """Shows a run's progress on `stream` (default: standard error).

    `tty=None` detects whether `stream` is a terminal. `interval` is the
    shortest time between two plain (non-terminal) lines.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        interval: float = 1.0,
        prefix: str = "pydispatch",
    ):
        if interval <= 0:
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self.stream: TextIO = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.interval = interval
        self.prefix = prefix
        self.total = 0
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._started = 0.0
        self._last_line_at = 0.0
        self._last_shown: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._running = False

    # -- the Progress protocol -------------------------------------------------

    def start(self, plan: Plan) -> None:
        """A run of `plan` begins: show the first line and start the clock."""
        with self._lock:
            self.total = len(plan.order)
            self.done = self.failed = 0
            self._started = time.monotonic()
            self._last_shown = None
            self._running = True
            self._stop.clear()
            if not self.tty:
                self._write_line(f"{self.prefix}: running {self.total} nodes")
            self._show(force=True)
        self._ticker = threading.Thread(target=self._tick, name="pydispatch-progress", daemon=True)
        self._ticker.start()

    def node_finished(self, node: DispatchNode, ok: bool) -> None:
        """One node finished (`ok` false: it failed or could not run)."""
        with self._lock:
            if not self._running:
                return
            self.done += 1
            if not ok:
                self.failed += 1
            self._show(force=False)

    def finish(self) -> None:
        """The run ended: stop the clock and print the summary line."""
        self._stop.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=2)
        with self._lock:
            if not self._running:
                return
            self._running = False
            if self.tty:
                self._redraw()
                self.stream.write("\n")
                self.stream.flush()
            else:
                self._write_line(self._summary(final=True))

    # -- drawing ---------------------------------------------------------------

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _summary(self, final: bool = False) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        state = "finished" if final else "done"
        return (
            f"{self.prefix}: {self.done}/{self.total} {state}{failed}, "
            f"{_format_elapsed(self._elapsed())} elapsed"
        )

    def _show(self, force: bool) -> None:
        """Update the display if it is due (call with the lock held)."""
        if self.tty:
            if force:
                self._redraw()
            return
        now = time.monotonic()
        state = (self.done, self.failed)
        changed = state != self._last_shown
        due = now - self._last_line_at >= self.interval
        heartbeat = now - self._last_line_at >= _HEARTBEAT
        if (changed and due) or heartbeat:
            self._write_line(self._summary())
            self._last_shown = state

    def _redraw(self) -> None:
        total = max(self.total, 1)
        filled = min(_BAR_WIDTH, self.done * _BAR_WIDTH // total)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        failed = f"  {self.failed} failed" if self.failed else ""
        line = (
            f"{self.prefix} [{bar}] {self.done}/{self.total}{failed}  "
            f"{_format_elapsed(self._elapsed())}"
        )
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()

    def _write_line(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self._last_line_at = time.monotonic()

    def _tick(self) -> None:
        period = _TTY_REFRESH if self.tty else min(self.interval, 1.0)
        while not self._stop.wait(period):
            with self._lock:
                if not self._running:
                    return
                self._show(force=self.tty)


register_display(TerminalProgress)
