"""`pydispatch run FILE`: load a graph file, run it, report every output."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import (
    CommandError,
    DispatcherError,
    GraphFileError,
    RunTimeoutError,
)
from ..report import OutputReport, one_line, print_json, print_reports
from ..tracebacks import format_user_exception
from . import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from ..executors.base import Executor
    from ..graph import DispatchNode
    from ..runfile import GraphFile


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
            raise CommandError(one_line(err)) from None
        return executor
    if security is not None:
        raise CommandError(
            "the --tls-* options are for connecting to a TLS scheduler given with "
            "--scheduler tls://HOST:PORT; the embedded cluster only listens on 127.0.0.1"
        )
    # A Julia file's workers start Julia in the preload, before they register with
    # the scheduler: Julia's start-up holds the GIL (no heartbeats meanwhile), and
    # left to the `@everywhere` plugin it would start after registration.
    julia = str(args.file).endswith(".jl")
    options: dict[str, Any] = {"preload": ["pydispatch.julia"]} if julia else {}
    try:
        return DaskExecutor.local(
            n_workers=args.workers, threads_per_worker=args.threads, **options
        )
    except (DispatcherError, OSError) as err:
        raise CommandError(f"cannot start the embedded local cluster: {one_line(err)}") from None


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
        print_json(reports, run_error, ok, elapsed, address, dashboard, picture)
    else:
        print_reports(reports, sys.stdout, sys.stderr)
        if run_error is not None:
            print(f"pydispatch run: error: {one_line(run_error)}", file=sys.stderr)
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
        print(f"pydispatch run: error: --visualize: {one_line(err)}", file=sys.stderr)
        return None
