"""Reaching the dask scheduler: address forms, TLS checks, and errors that say what to do."""

from __future__ import annotations

import ssl
from typing import Any

import distributed

from ..address import Address, parse_address
from ..errors import SchedulerUnreachableError, TLSError
from .compat import check_transport


def _security_hint(role: str) -> str:
    return (
        f"pass security=distributed.Security(tls_ca_file=CA, tls_{role}_cert=CERT, "
        f"tls_{role}_key=KEY, require_encryption=True) with a certificate the cluster's CA signed"
    )


def check_tls_config(address: str, security: Any, role: str = "client") -> None:
    """`TLSError` if `address` is tls:// but `security` (or dask's config) has no certificate."""
    if not address.startswith("tls://"):
        return
    try:
        sec = security if security is not None else distributed.Security()
        context = sec.get_connection_args(role).get("ssl_context")
    except Exception as err:
        raise TLSError(
            f"cannot set up TLS for {address}: {type(err).__name__}: {err}; {_security_hint(role)}"
        ) from None
    if context is None:
        raise TLSError(
            f"{address} is a TLS address, but this {role} has no TLS certificate "
            f"(security={security!r}); {_security_hint(role)}"
        )


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_tls_mismatch(address: str, err: BaseException) -> bool:
    """Whether `err`, met connecting to `address`, is a TLS handshake gone wrong.

    tornado sometimes reports a plain scheduler answering a TLS client as a
    `ValueError` ("IOStream is not idle; cannot convert to SSL") rather than an
    SSL error, depending on which side writes first.
    """
    return address.startswith("tls://") and any(
        isinstance(e, ssl.SSLError) or "SSL" in str(e) for e in _chain(err)
    )


def connect_error(
    address: str, timeout: float, err: BaseException, role: str = "client"
) -> SchedulerUnreachableError:
    """The error to raise when connecting to the scheduler at `address` failed with `err`."""
    detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    chain = _chain(err)
    text = " ".join(str(e) for e in chain)
    if address.startswith("tls://") and (
        any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text or not str(err)
    ):
        return TLSError(
            f"the TLS handshake with the dask scheduler at {address} failed ({detail}): "
            f"the scheduler refused this {role}'s certificate, this {role} does not trust "
            "the scheduler's, or the scheduler does not speak TLS; check the tls_ca_file, "
            f"tls_{role}_cert and tls_{role}_key of `security=`"
        )
    # a TLS server drops a plain-TCP handshake: reset, or closed with no refusal
    reset = not any(isinstance(e, ConnectionRefusedError) for e in chain) and any(
        isinstance(e, (ConnectionResetError, distributed.comm.CommClosedError)) for e in chain
    )
    if address.startswith("tcp://") and reset:
        return SchedulerUnreachableError(
            f"the dask scheduler at {address} closed the connection during the handshake "
            f"({detail}); if it requires TLS, connect to {'tls://' + address[len('tcp://') :]} "
            f"and {_security_hint(role)}"
        )
    return SchedulerUnreachableError(
        f"cannot reach a dask scheduler at {address} within {timeout}s ({detail}). Start one "
        f"with `dask scheduler`, and workers with `pydispatch worker {address}`, or use "
        "DaskExecutor.local() for an embedded cluster"
    )


def check_seconds(name: str, value: object) -> None:
    """`ValueError` unless `value` is a number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")


def normalize_address(address: str | Address) -> str:
    """The full form of a user's scheduler address; `ValueError` quoting it if malformed.

    tcp and tls addresses (and bare `host:port`) follow `Address`: `tcp://host:port`.
    Any other transport dask supports (`inproc://`, `ws://`, `wss://`, `ucx://`, ...)
    is checked with dask's own address parsing and its registry of transports.
    """
    if isinstance(address, Address):
        return str(address)
    if isinstance(address, str) and "://" in address:
        scheme = address.strip().split("://", 1)[0]
        if scheme not in ("tcp", "tls"):
            return _dask_transport_address(address.strip(), scheme)
    scheme, host, port = parse_address(address)
    return str(Address(host, port, scheme))


def _dask_transport_address(address: str, scheme: str) -> str:
    try:
        distributed.comm.parse_address(address, strict=True)
        check_transport(scheme)
    except ValueError as err:
        raise ValueError(
            f"invalid address {address!r}: {err}; expected [tcp://|tls://]HOST[:PORT] "
            "(tcp://host:port, tls://host:port) or an address of another dask transport "
            "(inproc://, ws://, wss://, ucx:// when installed)"
        ) from None
    return address
