"""TLS end to end: a real `dask scheduler` that speaks only TLS and requires client certificates.

The certificates come from the `tls_files` fixture (a throwaway CA made with
`cryptography`); `tls_cluster` is a scheduler process and one worker process
started with `--tls-ca-file/--tls-cert/--tls-key`.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time

import distributed
import psutil
import pytest
from real_cluster import Cluster, TLSFiles, end_process, wait_until

from pydispatch import (
    Address,
    Client,
    DaskExecutor,
    DispatcherError,
    Op,
    SchedulerUnreachableError,
    TLSError,
    Worker,
)

CONNECT_TIMEOUT = 5.0


def where_am_i() -> str:
    return str(distributed.get_worker().address)


def _max_graph() -> Op:
    a = Op(lambda: 3)
    b = Op(lambda: 4)
    return Op(max, a, b)


class CAOnlySecurity(distributed.Security):
    """A client that trusts the cluster's CA but presents no certificate of its own."""

    def __init__(self, ca_file: str):
        super().__init__(require_encryption=True)
        self._ca = ca_file

    def get_connection_args(self, role: str) -> dict[str, object]:
        args = super().get_connection_args(role)
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self._ca)
        context.check_hostname = False
        args["ssl_context"] = context
        return args


def test_client_with_certificates_runs_a_graph(tls_cluster: Cluster, tls_files: TLSFiles) -> None:
    assert tls_cluster.address.startswith("tls://")
    with DaskExecutor(
        tls_cluster.address, security=tls_files.security(), connect_timeout=CONNECT_TIMEOUT
    ) as ex:
        assert ex.scheduler_address == tls_cluster.address
        (result,) = ex.run(_max_graph(), timeout=60)
        assert result.unwrap().result() == 4
        placed = Op(where_am_i)
        ex.run([placed], timeout=60)
        assert placed.result().startswith("tls://127.0.0.1:")


def test_tls_address_forms_are_accepted(tls_cluster: Cluster, tls_files: TLSFiles) -> None:
    address = Address(tls_cluster.address)
    assert address.scheme == "tls"
    # an Address object, and a bare host:port with a Security (upgraded to tls://)
    bare = f"{address.host}:{address.port}"
    for given in (address, bare):
        with DaskExecutor(given, security=tls_files.security()) as ex:
            assert ex.scheduler_address == tls_cluster.address
            (result,) = ex.run(Op(sum, [1, 2, 3]), timeout=60)
            assert result.unwrap().result() == 6


def test_client_without_certificates_is_refused_at_once(tls_cluster: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(TLSError) as info:
        Client(tls_cluster.address, connect_timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - started < CONNECT_TIMEOUT
    message = str(info.value)
    assert tls_cluster.address in message
    assert "no TLS certificate" in message
    assert "tls_client_cert" in message and "security=" in message
    assert isinstance(info.value, SchedulerUnreachableError)
    assert isinstance(info.value, DispatcherError)


def test_scheduler_refuses_a_client_that_presents_no_certificate(
    tls_cluster: Cluster, tls_files: TLSFiles
) -> None:
    """The server side of the handshake: a TLS client without a certificate is rejected."""
    started = time.monotonic()
    with pytest.raises(TLSError) as info:
        DaskExecutor(
            tls_cluster.address,
            security=CAOnlySecurity(tls_files.ca_file),
            connect_timeout=CONNECT_TIMEOUT,
        )
    assert time.monotonic() - started < CONNECT_TIMEOUT + 2
    message = str(info.value)
    assert "TLS handshake" in message and tls_cluster.address in message
    assert "refused this client's certificate" in message


def test_scheduler_refuses_a_certificate_from_another_ca(
    tls_cluster: Cluster, tls_files: TLSFiles
) -> None:
    rogue = tls_files.security(
        tls_client_cert=tls_files.other_cert, tls_client_key=tls_files.other_key
    )
    started = time.monotonic()
    with pytest.raises(TLSError, match="TLS handshake"):
        Client(tls_cluster.address, security=rogue, connect_timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - started < CONNECT_TIMEOUT + 2


def test_plain_tcp_client_to_a_tls_scheduler_fails_clearly(tls_cluster: Cluster) -> None:
    tcp_address = tls_cluster.address.replace("tls://", "tcp://")
    started = time.monotonic()
    with pytest.raises(SchedulerUnreachableError) as info:
        DaskExecutor(tcp_address, connect_timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - started < CONNECT_TIMEOUT + 2
    message = str(info.value)
    assert tcp_address in message
    assert "requires TLS" in message and tls_cluster.address in message


def test_tls_client_to_a_plain_scheduler_fails_clearly(
    dask_cluster: Cluster, tls_files: TLSFiles
) -> None:
    tls_address = dask_cluster.address.replace("tcp://", "tls://")
    started = time.monotonic()
    with pytest.raises(TLSError, match="does not speak TLS"):
        Client(tls_address, security=tls_files.security(), connect_timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - started < CONNECT_TIMEOUT + 2


def test_client_api_over_tls(tls_cluster: Cluster, tls_files: TLSFiles) -> None:
    client = Client(tls_cluster.address, security=tls_files.security())
    try:
        node = _max_graph()
        client.submit(node)
        assert client.result(node, timeout=60) == 4
        assert client.gather([node], timeout=60) == [4]
        assert client.keys
    finally:
        client.shutdown()
    wait_until(
        lambda: not (client.keys & tls_cluster.scheduler_keys()),
        20,
        "the client's keys to leave the TLS scheduler",
    )


def test_in_process_worker_joins_a_tls_scheduler(tls_cluster: Cluster, tls_files: TLSFiles) -> None:
    with Worker(tls_cluster.address, security=tls_files.security(), name="tls-inproc") as worker:
        assert worker.address.startswith("tls://127.0.0.1:")
        client = Client(tls_cluster.address, security=tls_files.security())
        try:
            node = Op(where_am_i)
            client.submit(node, workers=worker.address)
            assert client.result(node, timeout=60) == worker.address
        finally:
            client.shutdown()


def test_worker_without_certificates_is_refused(tls_cluster: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(TLSError, match="tls_worker_cert"):
        Worker(tls_cluster.address, start_timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - started < CONNECT_TIMEOUT


@pytest.mark.slow
def test_pydispatch_worker_command_joins_with_tls_options(
    tls_cluster: Cluster, tls_files: TLSFiles
) -> None:
    before = set(tls_cluster.worker_addresses())
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "pydispatch", "worker", tls_cluster.address,
            "--nworkers", "1", "--nthreads", "1", "--death-timeout", "30",
            "--tls-ca-file", tls_files.ca_file,
            "--tls-cert", tls_files.cert,
            "--tls-key", tls_files.key,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(
            lambda: proc.poll() is not None or set(tls_cluster.worker_addresses()) - before,
            60,
            "`pydispatch worker --tls-*` to join the TLS scheduler",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        (new,) = set(tls_cluster.worker_addresses()) - before
        assert new.startswith("tls://")
    finally:
        end_process(proc, signal.SIGTERM)
    wait_until(lambda: set(tls_cluster.worker_addresses()) == before, 30, "the CLI worker to leave")


def _listening() -> set[tuple[int, str, int]]:
    """(pid, ip, port) of every listening socket of this process and its children."""
    found = set()
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN:
                found.add((proc.pid, conn.laddr.ip, conn.laddr.port))
    return found


@pytest.mark.slow
def test_local_secure_cluster_speaks_only_tls_on_loopback() -> None:
    before = _listening()
    with DaskExecutor.local(n_workers=1, threads_per_worker=1, secure=True) as ex:
        assert ex.scheduler_address.startswith("tls://127.0.0.1:")
        opened = _listening() - before
        # scheduler, dashboard, nanny, worker (and its dashboard): all on loopback only
        assert len(opened) >= 4, opened
        assert {ip for _, ip, _ in opened} == {"127.0.0.1"}, opened
        info = ex.client.dask_client.scheduler_info(n_workers=-1)
        for address, worker in info["workers"].items():
            assert address.startswith("tls://127.0.0.1:")
            assert str(worker.get("nanny")).startswith("tls://127.0.0.1:")
        (result,) = ex.run(_max_graph(), timeout=60)
        assert result.unwrap().result() == 4
        placed = Op(where_am_i)
        ex.run([placed], timeout=60)
        assert placed.result().startswith("tls://127.0.0.1:")
        # the same scheduler over plain TCP, or over TLS without its certificate: refused
        with pytest.raises(SchedulerUnreachableError, match="requires TLS"):
            Client(ex.scheduler_address.replace("tls://", "tcp://"), connect_timeout=5)
        with pytest.raises(TLSError):
            Client(ex.scheduler_address, connect_timeout=5)


def test_tornados_value_error_for_a_plain_peer_counts_as_a_tls_mismatch() -> None:
    # Depending on who writes first, tornado reports a plain scheduler answering a
    # TLS client as this ValueError instead of an SSL error (a race seen in CI).
    from pydispatch.dask_adapter.connection import connect_error, is_tls_mismatch

    race = ValueError("IOStream is not idle; cannot convert to SSL")
    assert is_tls_mismatch("tls://127.0.0.1:1", race)
    assert not is_tls_mismatch("tcp://127.0.0.1:1", race)
    assert not is_tls_mismatch("tls://127.0.0.1:1", ValueError("bad value"))
    error = connect_error("tls://127.0.0.1:1", 5, race)
    assert isinstance(error, TLSError) and "does not speak TLS" in str(error)
