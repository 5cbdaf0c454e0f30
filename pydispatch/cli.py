"""The `pydispatch` command: `pydispatch run FILE` and `pydispatch worker ADDRESS`.

Exit codes: 0 when everything asked for succeeded; 1 when the run failed (an
output failed, the run timed out, the scheduler went away); 2 when the
command cannot start (bad options, missing file, a file that defines no
graph, an unreachable scheduler, missing graphviz).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__
from .results import DependencyError, DispatcherError, RunTimeoutError

if TYPE_CHECKING:
    from .executors.base import Executor
    from .graph import DispatchNode
    from .runfile import GraphFile

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_SCHEDULER = "127.0.0.1:8786"
_MAX_REPR = 2000

RUN_EPILOG = """\
FILE is a Python file that defines its graph with a module-level `outputs`
(a node, a list of nodes or a DispatchGraph) or a function `main()` returning
one. It runs with __name__ == "__pydispatch_run__", so an
`if __name__ == "__main__":` block does not run. Its functions travel to the
workers by value: they need not be importable there. A Julia file (.jl,
needs juliacall) defines `outputs` or `main()` with Dispatcher.jl nodes, whose
functions run in Julia on the workers (start them with `pydispatch worker --julia`).

exit codes: 0 every output succeeded; 1 an output failed or the run timed
out; 2 bad options, missing file, no graph, unreachable scheduler.

examples:
  pydispatch run examples/cluster.py                 # embedded local cluster
  pydispatch run job.py --scheduler 10.0.0.5:8786    # an existing cluster
  pydispatch run job.py --json --quiet > result.json
"""

WORKER_EPILOG = """\
Runs dask's own worker (`dask worker`) with these options translated; options
after `--` are passed to it unchanged, e.g.
  pydispatch worker 10.0.0.5:8786 --nworkers 4 -- --memory-limit 4GB
`--dry-run` prints the dask command instead of running it. Stop the workers
with Ctrl-C (SIGINT) or SIGTERM.
"""


class CommandError(Exception):
    """A one-line error that ends the command with exit code `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# -- argument parsing ---------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def _add_tls_options(parser: argparse.ArgumentParser, role: str) -> None:
    group = parser.add_argument_group("TLS (for tls:// schedulers)")
    group.add_argument("--tls-ca-file", metavar="FILE", help="CA certificate(s) file (PEM)")
    group.add_argument("--tls-cert", metavar="FILE", help=f"{role} certificate file (PEM)")
    group.add_argument("--tls-key", metavar="FILE", help=f"{role} private key file (PEM)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the `pydispatch` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="pydispatch",
        description="Run Dispatcher-style task graphs on the dask distributed scheduler.",
    )
    parser.add_argument("--version", action="version", version=f"pydispatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run the graph a Python (or Julia) file defines",
        description="Run the graph FILE defines, on a dask scheduler or an embedded local cluster.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "file", metavar="FILE", help="Python (or Julia) file defining `outputs` or `main()`"
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on this dask scheduler (e.g. 127.0.0.1:8786, tls://host:8786); "
        "default: start an embedded local cluster on 127.0.0.1 and stop it afterwards",
    )
    run.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes of the embedded cluster (default: dask's choice)",
    )
    run.add_argument(
        "--threads",
        type=_positive_int,
        metavar="T",
        help="threads per worker process of the embedded cluster",
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="give up after S seconds (also bounds connecting to the scheduler)",
    )
    run.add_argument("--json", action="store_true", help="print the outputs as one JSON object")
    run.add_argument(
        "--visualize",
        metavar="PATH",
        help="after the run, draw the graph with each node's state (.svg, .png, .pdf, .dot)",
    )
    run.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress display and no informational lines",
    )
    _add_tls_options(run, "client")
    run.set_defaults(handler=cmd_run, parser=run)

    worker = commands.add_parser(
        "worker",
        help="start dask worker processes for a scheduler",
        description="Start dask worker processes (with nannies) connected to a dask scheduler.",
        epilog=WORKER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument(
        "address",
        nargs="?",
        default=DEFAULT_SCHEDULER,
        metavar="ADDRESS",
        help=f"the scheduler's address (default: {DEFAULT_SCHEDULER})",
    )
    worker.add_argument(
        "--nworkers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes to start (default: 1)",
    )
    worker.add_argument(
        "--nthreads",
        type=_positive_int,
        metavar="T",
        help="threads per worker process (default: CPUs / N)",
    )
    worker.add_argument(
        "--name",
        metavar="NAME",
        help="worker name; with several workers, -0, -1, ... are appended",
    )
    worker.add_argument(
        "--julia",
        action="store_true",
        help="start Julia in each worker (adds --preload pydispatch.julia)",
    )
    worker.add_argument(
        "--death-timeout",
        type=_positive_float,
        metavar="S",
        help="stop if the scheduler cannot be reached for S seconds (default: keep trying)",
    )
    worker.add_argument(
        "--dry-run", action="store_true", help="print the dask worker command and exit"
    )
    _add_tls_options(worker, "worker")
    worker.set_defaults(handler=cmd_worker, parser=worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `pydispatch` and `python -m pydispatch`; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if args_list[:1] == ["worker"] and "--" in args_list:
        cut = args_list.index("--")
        args_list, passthrough = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser()
    args, unknown = parser.parse_known_args(args_list)
    if unknown:  # reported by the subcommand, so its usage line is the one shown
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.passthrough = passthrough
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CommandError as err:
        print(f"pydispatch {args.command}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"pydispatch {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- pydispatch run -------------------------------------------------------------


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
    from . import DaskExecutor

    security = _security(args)
    if args.scheduler is not None:
        connect = min(10.0, args.timeout) if args.timeout else 10.0
        try:
            executor: Executor = DaskExecutor(
                args.scheduler, connect_timeout=connect, security=security
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
    from .runfile import GraphFileError, load_graph_file

    try:
        return load_graph_file(path)
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
    """The traceback of `err` without the frames of pydispatch and runpy above the user's file."""
    tb = err.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename.startswith(here) or filename.startswith("<frozen")):
            break
        tb = tb.tb_next
    return traceback.format_exception(type(err), err, tb)


def cmd_run(args: argparse.Namespace) -> int:
    """`pydispatch run`: load FILE, run its outputs, report them."""
    if args.scheduler is not None and (args.workers or args.threads):
        raise CommandError(
            "--workers and --threads size the embedded cluster; with --scheduler, start "
            "workers on that cluster instead (pydispatch worker ADDRESS --nworkers N)"
        )
    if args.visualize:
        from .visualize import VisualizationError, check_can_draw

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
        dashboard = getattr(executor, "dashboard_link", None)
        info.line(f"scheduler {address}" if address else "running")
        if dashboard:
            info.line(f"dashboard {dashboard}")
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
        from .progress_display import TerminalProgress

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
    from .visualize import VisualizationError, visualize

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
    return None, "".join(traceback.format_exception(type(error), error, error.__traceback__))


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


# -- pydispatch worker ------------------------------------------------------------


def _worker_address(text: str, tls: bool) -> str:
    """The scheduler address as dask wants it (`scheme://host:port`); CommandError if bad."""
    from .address import Address  # type: ignore[import-not-found,unused-ignore]

    if tls and "://" not in text:
        text = "tls://" + text
    try:
        address = Address(text)
    except ValueError as err:
        raise CommandError(f"bad scheduler address: {err}") from None
    if tls and address.scheme != "tls":
        raise CommandError(
            f"the --tls-* options need a tls:// scheduler address, got {text!r}; "
            f"use tls://{address.host}:{address.port}"
        )
    return str(address)


def dask_worker_args(args: argparse.Namespace) -> list[str]:
    """The `dask worker` arguments that `pydispatch worker` with `args` runs."""
    tls = {
        "--tls-ca-file": args.tls_ca_file,
        "--tls-cert": args.tls_cert,
        "--tls-key": args.tls_key,
    }
    for option, path in tls.items():
        if path is not None and not os.path.isfile(path):
            raise CommandError(f"{option} {path!r}: no such file")
    use_tls = any(tls.values())
    if use_tls and not (args.tls_ca_file and args.tls_cert):
        raise CommandError(
            "TLS needs at least --tls-ca-file and --tls-cert (and --tls-key "
            "unless the certificate file holds the key)"
        )
    out = [_worker_address(args.address, use_tls), "--nworkers", str(args.nworkers)]
    if args.nthreads is not None:
        out += ["--nthreads", str(args.nthreads)]
    if args.name is not None:
        out += ["--name", args.name]
    if args.death_timeout is not None:
        out += ["--death-timeout", str(args.death_timeout)]
    for option, path in tls.items():
        if path is not None:
            out += [option, path]
    if args.julia:
        _check_julia_available()
        out += ["--preload", "pydispatch.julia"]
    return out + list(args.passthrough)


def _check_julia_available() -> None:
    backend = os.environ.get("PYDISPATCH_JULIA_BACKEND", "juliacall").strip().lower()
    if backend == "juliacall" and importlib.util.find_spec("juliacall") is None:
        raise CommandError(
            "--julia needs juliacall in this Python environment: "
            "python -m pip install 'pydispatch-dask[julia]'"
        )


def cmd_worker(args: argparse.Namespace) -> int:
    """`pydispatch worker`: run dask's worker command with the translated options."""
    dask_args = dask_worker_args(args)
    if args.dry_run:
        print(shlex.join(["dask", "worker", *dask_args]))
        return EXIT_OK
    from distributed.cli.dask_worker import main as dask_worker

    try:
        dask_worker.main(args=dask_args, prog_name="pydispatch worker", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
