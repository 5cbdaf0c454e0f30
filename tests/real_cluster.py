"""A real dask scheduler and real worker processes on 127.0.0.1, for the tests.

`start_cluster` starts them (workers in parallel), `Cluster.stop` ends every one of
them by its PID. The fixtures in conftest.py use these; tests import helpers from here.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import distributed
import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms; fail the test with `what` if it stays false."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def process_gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie waiting to be reaped counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def end_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """End `proc` by its PID: `sig`, then SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass


@dataclass
class Cluster:
    """A scheduler process and worker processes started by a fixture."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_args: tuple[str, ...] = ()
    security: distributed.Security | None = None
    _client: distributed.Client | None = field(default=None, repr=False)

    @property
    def client(self) -> distributed.Client:
        """One dask client for the tests' own questions (reused: polls stay cheap)."""
        if self._client is None or self._client.status not in ("running", "connecting"):
            self._client = distributed.Client(
                self.address, timeout=10, set_as_default=False, **self._security()
            )
        return self._client

    def add_worker(
        self, nthreads: int = 1, *args: str, wait: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start one more worker process (no nanny: its PID is the worker's own)."""
        before = self.worker_count() if wait else 0
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                self.address,
                "--no-nanny",
                "--nthreads",
                str(nthreads),
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--death-timeout",
                "60",
                *self.extra_args,
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers.append(proc)
        if wait:
            wait_until(
                lambda: proc.poll() is not None or self.worker_count() > before,
                60,
                "a worker to join the scheduler",
            )
            assert proc.poll() is None, "the worker process exited while starting"
        return proc

    def worker_count(self) -> int:
        return len(self.client.nthreads())

    def worker_addresses(self) -> list[str]:
        return sorted(self.client.nthreads())

    def scheduler_keys(self) -> set[str]:
        """The keys the scheduler knows right now."""
        return set(self.client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks)))

    def _security(self) -> dict[str, object]:
        return {} if self.security is None else {"security": self.security}

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for proc in self.workers:
            end_process(proc)
        end_process(self.scheduler)


def start_cluster(
    n_workers: int,
    *,
    scheduler_args: tuple[str, ...] = (),
    tls: TLSFiles | None = None,
    env: dict[str, str] | None = None,
    protocol: str = "tcp",
) -> Cluster:
    """A `dask scheduler` process on a free port of 127.0.0.1, and `n_workers` workers.

    With `tls`, the scheduler and workers speak only TLS and require client
    certificates (`cluster.security` is a client's `Security`); `env` adds
    environment variables (e.g. `DASK_DISTRIBUTED__...` config) to the scheduler;
    `protocol` is the transport of a cluster without TLS (e.g. "ws").
    """
    port = free_port()
    tls_args = tls.process_args() if tls is not None else ()
    scheduler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
            "--protocol",
            "tls" if tls is not None else protocol,
            *tls_args,
            *scheduler_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )
    scheme = "tls" if tls is not None else protocol
    cluster = Cluster(
        f"{scheme}://127.0.0.1:{port}",
        scheduler,
        extra_args=tls_args,
        security=tls.security() if tls is not None else None,
    )
    try:
        wait_until(lambda: scheduler.poll() is not None or _accepts(port), 60, "the scheduler")
        assert scheduler.poll() is None, "the scheduler process exited while starting"
        procs = [cluster.add_worker(wait=False) for _ in range(n_workers)]  # in parallel
        if n_workers:
            wait_until(
                lambda: (
                    any(p.poll() is not None for p in procs) or cluster.worker_count() >= n_workers
                ),
                60,
                f"{n_workers} workers to join the scheduler",
            )
            assert all(p.poll() is None for p in procs), "a worker process exited while starting"
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA, and a certificate + key it signed (for 127.0.0.1 and localhost)."""

    ca_file: str
    cert: str
    key: str
    other_cert: str
    other_key: str
    """A certificate + key signed by a different CA: not trusted by the cluster."""

    def process_args(self) -> tuple[str, ...]:
        return ("--tls-ca-file", self.ca_file, "--tls-cert", self.cert, "--tls-key", self.key)

    def security(self, **overrides: object) -> distributed.Security:
        options: dict[str, object] = {
            "tls_ca_file": self.ca_file,
            "tls_client_cert": self.cert,
            "tls_client_key": self.key,
            "tls_worker_cert": self.cert,
            "tls_worker_key": self.key,
            "require_encryption": True,
        }
        options.update(overrides)
        return distributed.Security(**options)  # type: ignore[arg-type]


def _certificate(name: str, issuer=None, issuer_key=None, *, ca: bool):  # type: ignore[no-untyped-def]
    """A fresh key and a one-day certificate for `name`, self-signed when no issuer is given."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = issuer_key or key
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = dict.fromkeys(
            [
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ],
            False,
        )
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = (
            builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
    return key, builder.sign(signer, hashes.SHA256())


def _make_ca(name: str):  # type: ignore[no-untyped-def]
    return _certificate(name, ca=True)


def _make_leaf(ca_key, ca_cert, name: str):  # type: ignore[no-untyped-def]
    return _certificate(name, ca_cert, ca_key, ca=False)


def _write_pem(path: Path, key=None, cert=None) -> str:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    data = b""
    if cert is not None:
        data += cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def make_tls_files(folder: Path) -> TLSFiles:
    """A throwaway CA with a certificate it signed, and one signed by another CA, in `folder`."""
    ca_key, ca_cert = _make_ca("pydispatch test CA")
    key, cert = _make_leaf(ca_key, ca_cert, "pydispatch test node")
    rogue_ca_key, rogue_ca_cert = _make_ca("some other CA")
    other_key, other_cert = _make_leaf(rogue_ca_key, rogue_ca_cert, "untrusted client")
    return TLSFiles(
        ca_file=_write_pem(folder / "ca.pem", cert=ca_cert),
        cert=_write_pem(folder / "node.pem", cert=cert),
        key=_write_pem(folder / "node-key.pem", key=key),
        other_cert=_write_pem(folder / "other.pem", cert=other_cert),
        other_key=_write_pem(folder / "other-key.pem", key=other_key),
    )
