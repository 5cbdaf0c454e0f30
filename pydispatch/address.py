"""`Address`: a scheduler or worker endpoint, `scheme://host:port`."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

SCHEMES = ("tcp", "tls")
DEFAULT_PORT = 8786
_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")


def _bad(text: object, why: str) -> ValueError:
    return ValueError(
        f"bad address {text!r}: {why}; expected [tcp://|tls://]HOST[:PORT], "
        "e.g. 127.0.0.1:8786, tls://scheduler.example.org:8786 or [::1]:8786"
    )


def _check_host(text: object, host: str) -> str:
    if not host:
        raise _bad(text, "the host is empty")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
        raise _bad(text, f"{host!r} is neither an IP address nor a host name")
    return host


def _check_port(text: object, port: object) -> int:
    if isinstance(port, bool):
        raise _bad(text, f"the port {port!r} is not a number")
    if isinstance(port, str):
        if not port.isdigit():
            raise _bad(text, f"the port {port!r} is not a number")
        port = int(port)
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise _bad(text, f"the port {port!r} is not between 0 and 65535")
    return port


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, str, int]:
    """`(scheme, host, port)` of an address; `ValueError` quoting it if malformed."""
    if not isinstance(text, str):
        raise _bad(text, f"an address is a string, not {type(text).__name__}")
    rest = text.strip()
    scheme = "tcp"
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        if scheme not in SCHEMES:
            raise _bad(text, f"the scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    if rest.startswith("["):
        host, bracket, port_part = rest[1:].partition("]")
        if not bracket:
            raise _bad(text, "an IPv6 address opened with '[' has no closing ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(text, f"{host!r} in brackets is not an IPv6 address") from None
        if port_part and not port_part.startswith(":"):
            raise _bad(text, f"unexpected {port_part!r} after the IPv6 address")
        port: object = port_part[1:] if port_part else default_port
    elif rest.count(":") > 1:
        raise _bad(text, "write an IPv6 address in brackets, as [::1]:8786")
    else:
        host, colon, port_str = rest.partition(":")
        port = port_str if colon else default_port
        host = _check_host(text, host)
    return scheme, host, _check_port(text, port)


class Address:
    """An endpoint: `Address("tls://10.0.0.1:8786")` or `Address(host, port, scheme="tcp")`."""

    __slots__ = ("host", "port", "scheme")
    scheme: str
    host: str
    port: int

    def __init__(self, host: str | Address, port: int | None = None, scheme: str = "tcp"):
        if isinstance(host, Address):
            self.scheme, self.host, self.port = host.scheme, host.host, host.port
            return
        if port is None:
            self.scheme, self.host, self.port = parse_address(host)
            return
        if scheme not in SCHEMES:
            raise _bad(f"{scheme}://{host}:{port}", f"the scheme {scheme!r} is not one of tcp, tls")
        text = f"{scheme}://{host}:{port}"
        host = str(host)
        if ":" in host:
            try:
                host = str(ipaddress.IPv6Address(host.strip("[]")))
            except ValueError:
                raise _bad(text, f"{host!r} is not an IPv6 address") from None
        else:
            host = _check_host(text, host)
        self.scheme, self.host, self.port = scheme, host, _check_port(text, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        """Equal to an `Address` of the same endpoint, or to its own string form.

        Only the canonical string (`str(address)`, e.g. "tcp://127.0.0.1:8786")
        compares equal, so that equal objects hash alike (`hash(str(address))`).
        """
        if isinstance(other, str):
            return str(self) == other
        if not isinstance(other, Address):
            return NotImplemented
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)

    def __hash__(self) -> int:
        return hash(str(self))

    def connect(self, timeout: float | None = 10.0) -> socket.socket:
        """A TCP socket connected to the endpoint (TLS is not negotiated)."""
        try:
            return socket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as err:
            raise ConnectionError(
                f"cannot connect to {self}: {err}; check that the process listens there"
            ) from err


def pack_address(obj: Any) -> Any:
    """A `default=` hook for `msgpack.packb`: an `Address` packs as its string."""
    if isinstance(obj, Address):
        return str(obj)
    raise TypeError(f"cannot pack {obj!r} ({type(obj).__name__}) with msgpack")
