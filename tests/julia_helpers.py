"""Helpers for the Julia bridge tests: real dask processes, a Julia runner."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BRIDGE = REPO / "julia" / "DispatchBridge"
JULIA = shutil.which("julia")

#: Seconds a Julia-marked test may take: a cold start instantiates and precompiles
#: PythonCall, CondaPkg, Dispatcher and their dependencies (minutes on 2 cores), far
#: beyond the suite-wide pytest timeout (pyproject.toml).
JULIA_TEST_TIMEOUT = 3600

#: For tests that need a Julia runtime: skip, saying why, where there is none.
needs_julia = [
    pytest.mark.julia,
    pytest.mark.timeout(JULIA_TEST_TIMEOUT),
    pytest.mark.skipif(
        JULIA is None,
        reason="needs Julia: `julia` is not on PATH (install Julia >= 1.10; see README 'Julia')",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_for_workers(address: str, n: int, timeout: float = 60.0) -> list[str]:
    """Poll the scheduler (bounded) until ``n`` workers are registered."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(address, timeout=timeout) as client:
        while True:
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
            if len(workers) >= n:
                return workers
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(workers)} of {n} workers registered with {address}")
            time.sleep(0.1)


def _worker_cmd(address: str, worker_args: tuple[str, ...]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "distributed.cli.dask_worker",
        address,
        "--host",
        "127.0.0.1",
        "--nthreads",
        "2",
        "--no-nanny",
        "--no-dashboard",
        *worker_args,
    ]


@contextmanager
def extra_worker(
    address: str,
    worker_env: Mapping[str, str] | None = None,
    worker_args: tuple[str, ...] = ("--preload", "pydispatch.julia"),
    timeout: float = 60.0,
) -> Iterator[str]:
    """One more ``dask worker`` process for ``address``; yields its address once registered."""
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        before = set(client.scheduler_info(n_workers=-1)["workers"])
    proc = subprocess.Popen(
        _worker_cmd(address, worker_args),
        env=_env(worker_env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers = wait_for_workers(address, len(before) + 1, timeout)
        (new,) = set(workers) - before
        yield new
    finally:
        _stop(proc)


@contextmanager
def dask_cluster(
    n_workers: int = 1,
    worker_env: Mapping[str, str] | None = None,
    worker_args: tuple[str, ...] = ("--preload", "pydispatch.julia"),
    timeout: float = 60.0,
) -> Iterator[str]:
    """A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

    Every process is ended by its PID when the block exits.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    try:
        procs.append(
            subprocess.Popen(
                [*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                env=_env(None),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        for _ in range(n_workers):
            procs.append(
                subprocess.Popen(
                    _worker_cmd(address, worker_args),
                    env=_env(worker_env),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        wait_for_workers(address, n_workers, timeout)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


def run_julia(code: str, *, env: Mapping[str, str] | None = None, timeout: float = 900) -> str:
    """Run Julia code in the DispatchBridge project; return stdout, fail with stderr."""
    assert JULIA is not None
    full_env = _env(env)
    full_env.setdefault("JULIA_CONDAPKG_BACKEND", "Null")
    full_env.setdefault("JULIA_PYTHONCALL_EXE", sys.executable)
    proc = subprocess.run(
        [JULIA, f"--project={BRIDGE}", "-e", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"julia failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


# -- run on workers / the scheduler (importable there: the repo is on PYTHONPATH) --
def runtime_state() -> tuple[bool, str, int | None]:
    """(running, backend name, owner thread id) of this process's Julia runtime."""
    from pydispatch.julia import current_runtime

    rt = current_runtime()
    return (
        rt is not None and rt.running,
        rt.backend.name if rt else "",
        rt.thread_id if rt else None,
    )


def last_seen(dask_scheduler: object, addr: str) -> float:
    """When the scheduler last heard from worker ``addr``."""
    return float(dask_scheduler.workers[addr].last_seen)  # type: ignore[attr-defined]


def evaluated_blocks() -> list[str]:
    """(On a worker) the ``@everywhere`` blocks its fake Julia evaluated, in order."""
    from pydispatch.julia import current_runtime

    rt = current_runtime()
    assert rt is not None
    return [c for c in rt.backend.calls if c.startswith("eval:")]
