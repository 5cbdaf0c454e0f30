"""The `pydispatch` command: `pydispatch run FILE` and `pydispatch worker ADDRESS`.

Exit codes: 0 when everything asked for succeeded; 1 when the run failed (an
output failed, the run timed out, the scheduler went away); 2 when the
command cannot start (bad options, missing file, a file that defines no
graph, an unreachable scheduler, missing graphviz).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    pass

from .commands import DEFAULT_SCHEDULER, EXIT_INTERRUPTED
from .commands.run import cmd_run
from .commands.worker import cmd_worker, dask_worker_args
from .errors import CommandError

__all__ = ["CommandError", "build_parser", "dask_worker_args", "main"]

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
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on this dask scheduler (e.g. 127.0.0.1:8786, tls://host:8786, any dask "
        "transport); default: start an embedded local cluster on 127.0.0.1 and stop it "
        "afterwards",
    )
    where.add_argument(
        "--scheduler-file",
        metavar="PATH",
        help="run on the scheduler this file names (written by `dask scheduler "
        "--scheduler-file PATH`, as dask-jobqueue and HPC set-ups do)",
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


if __name__ == "__main__":
    sys.exit(main())
