"""`pydispatch run FILE`: load a graph file, run it, report every output."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import (
    CommandError,
    DependencyError,
    DispatcherError,
    GraphFileError,
    RunTimeoutError,
)
from ..tracebacks import format_user_exception
from . import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from ..executors.base import Executor
    from ..graph import DispatchNode
    from ..runfile import GraphFile

_MAX_REPR = 2000


@dataclass
class OutputReport:
    """One output after the run: its label and value, or its error."""

    label: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _security(args: argparse.Namespace) -> Any:
    """A `distributed.Security` from the --tls-* options, or None without them."""
    files = {
        "--tls-ca-file": args.tls_ca_file,
        "--tls-cert": args.tls_cert,
        "--tls-key": args.tls_key,
    }
    if not any(files.values()):
        return None
    for option, path in files.items():
        if path is not None and not os.path.isfile(path):
            raise CommandError(f"{option} {path!r}: no such file")
    if not (args.tls_ca_file and args.tls_cert):
        raise CommandError(
            "TLS needs at least --tls-ca-file and --tls-cert (and --tls-key "
            "unless the certificate file holds the key)"
        )
    from distributed.security import Security

    return Security(
        tls_ca_file=args.tls_ca_file,
        tls_client_cert=args.tls_cert,
        tls_client_key=args.tls_key,
        require_encryption=True,
    )


def _open_executor(args: argparse.Namespace) -> Executor:
    """The DaskExecutor the options ask for: on --scheduler, or an embedded local cluster."""
    from .. import DaskExecutor

    security = _security(args)
    if args.scheduler is not None or args.scheduler_file is not None:
        connect = min(10.0, args.timeout) if args.timeout else 10.0
        try:
            executor: Executor = DaskExecutor(
                args.scheduler,
                scheduler_file=args.scheduler_file,
                connect_timeout=connect,
                security=security,
            )
        except ValueError as err:
            raise CommandError(f"bad --scheduler address: {err}") from None
        except (DispatcherError, OSError) as err:
            raise CommandError(_one_line(err)) from None
        return executor
    if security is not None:
        raise CommandError(
            "the --tls-* options are for connecting to a TLS scheduler given with "
            "--scheduler tls://HOST:PORT; the embedded cluster only listens on 127.0.0.1"
        )
    try:
        return DaskExecutor.local(n_workers=args.workers, threads_per_worker=args.threads)
    except (DispatcherError, OSError) as err:
        raise CommandError(f"cannot start the embedded local cluster: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _load(path: str) -> GraphFile:
    from ..julia.runfile import load_julia_graph
    from ..runfile import load_graph_file

    try:
        return load_graph_file(path, loaders={".jl": load_julia_graph})
    except GraphFileError as err:
        raise CommandError(str(err)) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:
        sys.stderr.write("".join(_user_traceback(err)))
        raise CommandError(
            f"{path!r} raised {type(err).__name__} while defining its graph (traceback above)"
        ) from None


def _user_traceback(err: BaseException) -> list[str]:
    """The traceback of `err` without pydispatch's frames (nor runpy's above the user's file)."""
    return [format_user_exception(err)]


def cmd_run(args: argparse.Namespace) -> int:
    """`pydispatch run`: load FILE, run its outputs, report them."""
    if (args.scheduler or args.scheduler_file) is not None and (args.workers or args.threads):
        raise CommandError(
            "--workers and --threads size the embedded cluster; with --scheduler, start "
            "workers on that cluster instead (pydispatch worker ADDRESS --nworkers N)"
        )
    if args.visualize:
        from ..errors import VisualizationError
        from ..visualize import check_can_draw

        try:
            check_can_draw(args.visualize)
        except (ValueError, VisualizationError) as err:
            raise CommandError(f"--visualize: {err}") from None
    graph_file = _load(args.file)
    info = _Info(sys.stderr, quiet=args.quiet)
    started = time.monotonic()
    executor = _open_executor(args)
    run_error: BaseException | None = None
    reports: list[OutputReport] = []
    picture: str | None = None
    try:
        address = getattr(executor, "scheduler_address", None)
        board = getattr(executor, "dashboard", None)
        dashboard = getattr(board, "link", None)
        info.line(f"scheduler {address}" if address else "running")
        if board is not None:
            info.line(f"dashboard {board}")
        if graph_file.prepare is not None:
            try:
                graph_file.prepare(executor)
            except GraphFileError as err:
                raise CommandError(str(err)) from None
        reports, run_error = _execute(executor, graph_file.outputs, args)
        if args.visualize:
            picture = _draw(graph_file, args.visualize)
    finally:
        executor.close()
    elapsed = time.monotonic() - started
    ok = run_error is None and all(r.ok for r in reports)
    if args.json:
        _print_json(reports, run_error, ok, elapsed, address, dashboard, picture)
    else:
        _print_reports(reports, sys.stdout, sys.stderr)
        if run_error is not None:
            print(f"pydispatch run: error: {_one_line(run_error)}", file=sys.stderr)
        if picture:
            info.line(f"graph drawn in {picture}")
    failed = sum(not r.ok for r in reports)
    if failed:
        info.line(f"{failed} of {len(reports)} outputs failed")
    return EXIT_OK if ok else EXIT_FAILED


class _Info:
    """Informational lines on standard error, unless --quiet."""

    def __init__(self, stream: TextIO, quiet: bool):
        self.stream = stream
        self.quiet = quiet

    def line(self, text: str) -> None:
        if not self.quiet:
            print(f"pydispatch: {text}", file=self.stream, flush=True)


def _execute(
    executor: Executor, outputs: list[DispatchNode], args: argparse.Namespace
) -> tuple[list[OutputReport], BaseException | None]:
    """Run the outputs; their reports, and the error that stopped the run (if one did)."""
    progress: Any = False
    if not args.quiet:
        from ..progress_display import TerminalProgress

        progress = TerminalProgress(sys.stderr)
    try:
        results = executor.run(outputs, throw_error=False, timeout=args.timeout, progress=progress)
    except (RunTimeoutError, DispatcherError, OSError) as err:
        return [], err
    reports = []
    for node, result in zip(outputs, results, strict=True):
        if result.is_error:
            reports.append(OutputReport(node.label, error=result.error))
            continue
        try:
            reports.append(OutputReport(node.label, value=node.result(timeout=args.timeout)))
        except Exception as err:
            reports.append(OutputReport(node.label, error=err))
    return reports, None


def _draw(graph_file: GraphFile, path: str) -> str | None:
    from ..errors import VisualizationError
    from ..visualize import visualize

    try:
        return str(visualize(graph_file.graph(), path))
    except (ValueError, VisualizationError) as err:
        print(f"pydispatch run: error: --visualize: {_one_line(err)}", file=sys.stderr)
        return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_REPR:
        text = f"{text[:_MAX_REPR]}... ({len(text)} characters)"
    return text


def _indent(text: str, prefix: str = "    ") -> str:
    return "".join(prefix + line for line in text.rstrip("\n").splitlines(keepends=True)) + "\n"


def _print_reports(reports: list[OutputReport], out: TextIO, err: TextIO) -> None:
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
        return f"{type(error).__name__}: {_one_line(error)}"
    root = error.root_cause
    what = f"{type(root).__name__}: {root}"
    failed = error.failed_node
    if failed is None or failed is error.node:
        return what
    return f"did not run: its dependency {failed.label!r} failed with {what}"


def _root_trace(error: BaseException) -> tuple[Any, str]:
    """The node whose code raised, and the traceback text of that failure."""
    if isinstance(error, DependencyError):
        inner: BaseException = error
        while isinstance(inner, DependencyError) and isinstance(inner.err, DependencyError):
            inner = inner.err
        trace = inner.trace if isinstance(inner, DependencyError) else ""
        return error.failed_node, trace or error.trace
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


def _print_json(
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
        "error": None if run_error is None else _one_line(run_error),
        "elapsed": round(elapsed, 3),
        "scheduler": None if scheduler is None else str(scheduler),
        "dashboard": dashboard,
        "visualization": picture,
    }
    json.dump(document, sys.stdout, default=_json_default, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()
