"""`pydispatch worker ADDRESS`: dask's own worker processes, options translated."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex

from ..errors import CommandError
from . import EXIT_OK


def _worker_address(text: str, tls: bool) -> str:
    """The scheduler address as dask wants it (`scheme://host:port`); CommandError if bad."""
    from ..address import Address

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
