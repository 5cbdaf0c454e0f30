"""Fixtures that run a real dask scheduler and real worker processes on 127.0.0.1.

Every process a fixture starts is ended by its PID when the fixture ends (the
helpers live in real_cluster.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psutil
import pytest
from real_cluster import Cluster, TLSFiles, make_tls_files, start_cluster


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """Certificates for a TLS cluster, generated with `cryptography`."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_cluster(tls_files: TLSFiles) -> Iterator[Cluster]:
    """A TLS-only scheduler requiring client certificates, with one worker. Do not kill."""
    cluster = start_cluster(1, tls=tls_files)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Cluster]:
    """A shared scheduler with two single-thread worker processes. Do not kill them."""
    cluster = start_cluster(2)
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster() -> Iterator[Callable[..., Cluster]]:
    """Start a private cluster (for tests that kill or restrict processes)."""
    started: list[Cluster] = []

    def start(n_workers: int = 2, **kwargs: object) -> Cluster:
        cluster = start_cluster(n_workers, **kwargs)  # type: ignore[arg-type]
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture
def scheduler_only() -> Iterator[Cluster]:
    """A scheduler with no worker."""
    cluster = start_cluster(0)
    yield cluster
    cluster.stop()


# -- nothing outlives the session ------------------------------------------------------
def _ends_with_us(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker and forkserver: they end when this process does."""
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return True
    return "multiprocessing.resource_tracker" in command or "multiprocessing.forkserver" in command


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the session if a process it started is still running, and end it.

    A process left behind means a fixture or an executor did not end what it
    started. It can also hang the interpreter at exit (a process pool's manager
    thread joining a worker that never stops), which is worse than a failure. A
    session that already failed or was interrupted keeps its exit status and does
    not wait.
    """
    clean = session.exitstatus == pytest.ExitCode.OK
    children = [p for p in psutil.Process().children(recursive=True) if not _ends_with_us(p)]
    _, alive = psutil.wait_procs(children, timeout=15 if clean else 0)
    if not alive:
        return
    lines = []
    for process in alive:
        try:
            lines.append(f"  pid {process.pid}: {' '.join(process.cmdline())[:200]}")
            process.kill()
        except psutil.Error:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes still running when the tests ended (killed now):\n" + "\n".join(lines)
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(message, red=True)
    if clean:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
