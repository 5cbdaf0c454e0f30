"""Reports of a run's outputs, for people and for programs: text and JSON.

What `pydispatch run` prints: each success as `label = value`, each failure with
its root traceback once; or one JSON document (`--json`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import DependencyError
from .tracebacks import format_user_exception

MAX_REPR = 2000
"""The longest value repr printed; longer ones are cut, saying how long they were."""


@dataclass
class OutputReport:
    """One output after the run: its label and value, or its error."""

    label: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > MAX_REPR:
        text = f"{text[:MAX_REPR]}... ({len(text)} characters)"
    return text


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line for line in text.rstrip("\n").splitlines(keepends=True)) + "\n"


def print_reports(reports: list[OutputReport], out: TextIO, err: TextIO) -> None:
    """Successes on `out` as `label = value`; failures on `err` with the root traceback once."""
    shown: set[int] = set()
    for report in reports:
        if report.ok:
            print(f"{report.label} = {_short_repr(report.value)}", file=out)
    out.flush()
    for report in reports:
        if report.error is None:
            continue
        error = report.error
        print(f"FAILED {report.label}: {_describe_error(error)}", file=err)
        origin, trace = _root_trace(error)
        if trace and id(origin) not in shown:
            shown.add(id(origin))
            where = f" of {origin.label!r}" if origin is not None else ""
            print(f"  traceback{where} (where it ran):", file=err)
            err.write(_indent(_with_exception_line(trace, error)))
    err.flush()


def _with_exception_line(trace: str, error: BaseException) -> str:
    """`trace` ending with the `Type: message` line (remote traces may hold frames only)."""
    root = error.root_cause if isinstance(error, DependencyError) else error
    last = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
    lines = trace.rstrip("\n").splitlines()
    if lines and lines[-1].startswith(type(root).__name__):
        return trace
    if not trace.lstrip().startswith("Traceback"):
        trace = "Traceback (most recent call last):\n" + trace
    # A Julia error (pydispatch.julia.JuliaTaskError) carries its Julia backtrace;
    # shown once, here, after the one-line message.
    foreign = getattr(root, "backtrace", None)
    if isinstance(foreign, str) and foreign.strip():
        last += "\nJulia backtrace:\n" + foreign.rstrip("\n")
    return trace.rstrip("\n") + "\n" + last + "\n"


def _describe_error(error: BaseException) -> str:
    """`ValueError: ...` for a node that raised; `did not run: ...` for one a dependency stopped."""
    if not isinstance(error, DependencyError):
        return f"{type(error).__name__}: {one_line(error)}"
    root = error.root_cause
    what = f"{type(root).__name__}: {root}"
    failed = error.failed_node
    if failed is None or failed is error.node:
        return what
    return f"did not run: its dependency {failed.label!r} failed with {what}"


def _root_trace(error: BaseException) -> tuple[Any, str]:
    """The node whose code raised, and the traceback text of that failure."""
    if isinstance(error, DependencyError):
        return error.failed_node, error.origin.trace or error.trace
    return None, format_user_exception(error)


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def _error_json(error: BaseException) -> dict[str, Any]:
    root = error.root_cause if isinstance(error, DependencyError) else error
    failed = error.failed_node if isinstance(error, DependencyError) else None
    _, trace = _root_trace(error)
    if trace:
        trace = _with_exception_line(trace, error)
    return {
        "type": type(root).__name__,
        "message": str(root),
        "failed_node": failed.label if failed is not None else None,
        "description": _describe_error(error),
        "traceback": trace,
    }


def print_json(
    reports: list[OutputReport],
    run_error: BaseException | None,
    ok: bool,
    elapsed: float,
    scheduler: Any,
    dashboard: Any,
    picture: str | None,
) -> None:
    outputs = []
    for report in reports:
        item: dict[str, Any] = {"label": report.label, "ok": report.ok}
        if report.error is None:
            item["value"] = report.value
        else:
            item["error"] = _error_json(report.error)
        outputs.append(item)
    document = {
        "ok": ok,
        "outputs": outputs,
        "error": None if run_error is None else one_line(run_error),
        "elapsed": round(elapsed, 3),
        "scheduler": None if scheduler is None else str(scheduler),
        "dashboard": dashboard,
        "visualization": picture,
    }
    json.dump(document, sys.stdout, default=_json_default, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
