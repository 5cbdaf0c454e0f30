"""Address and parse_address: every accepted form, and malformed ones rejected by name."""

from __future__ import annotations

import socket

import msgpack
import pytest

from pydispatch import Address, parse_address
from pydispatch.address import pack_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8786", ("tcp", "127.0.0.1", 8786)),
        ("tcp://127.0.0.1:9000", ("tcp", "127.0.0.1", 9000)),
        ("tls://10.1.2.3:443", ("tls", "10.1.2.3", 443)),
        ("[::1]:8786", ("tcp", "::1", 8786)),
        ("tls://[2001:db8::1]:1", ("tls", "2001:db8::1", 1)),
        ("localhost:8786", ("tcp", "localhost", 8786)),
        ("scheduler.example.org", ("tcp", "scheduler.example.org", 8786)),
        ("node-1", ("tcp", "node-1", 8786)),
        ("[::1]", ("tcp", "::1", 8786)),
    ],
)
def test_parse_address_accepts(text: str, expected: tuple[str, str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tcp://",
        ":8786",
        "host:",
        "host:port",
        "host:99999",
        "host:-1",
        "udp://host:1",
        "inproc://x",
        "[::1",
        "[::1]x",
        "[nothex]:1",
        "::1:8786",
        "1.2.3.4.5:80",
        "bad host:1",
        "-host:1",
    ],
)
def test_parse_address_rejects_and_quotes(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_address(text)
    assert repr(text) in str(info.value)
    assert "expected" in str(info.value)


def test_parse_address_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="8786"):
        parse_address(8786)  # type: ignore[arg-type]


def test_address_str_and_fields() -> None:
    address = Address("127.0.0.1:8786")
    assert str(address) == "tcp://127.0.0.1:8786"
    assert (address.scheme, address.host, address.port) == ("tcp", "127.0.0.1", 8786)
    assert str(Address("127.0.0.1", 9000)) == "tcp://127.0.0.1:9000"
    assert str(Address("::1", 1, scheme="tls")) == "tls://[::1]:1"
    assert Address("localhost:1") == "tcp://localhost:1"
    assert Address(address) == address
    assert len({Address("127.0.0.1:1"), Address("tcp://127.0.0.1:1")}) == 1


def test_address_hash_agrees_with_equality():
    address = Address("127.0.0.1:8786")
    assert address == "tcp://127.0.0.1:8786" and hash(address) == hash("tcp://127.0.0.1:8786")
    assert address != "127.0.0.1:8786"  # only the canonical string is equal
    assert {address: 1}["tcp://127.0.0.1:8786"] == 1
    assert "tcp://127.0.0.1:8786" in {address}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("127.0.0.1", 70000), {}), (("", 1), {}), (("h", 1), {"scheme": "udp"}), (("::g", 1), {})],
)
def test_address_components_rejected(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="bad address"):
        Address(*args, **kwargs)  # type: ignore[arg-type]


def test_address_packs_to_msgpack_as_its_string() -> None:
    packed = msgpack.packb({"addr": Address("127.0.0.1:8786")}, default=pack_address)
    assert msgpack.unpackb(packed) == {"addr": "tcp://127.0.0.1:8786"}
    with pytest.raises(TypeError, match="cannot pack"):
        msgpack.packb(object(), default=pack_address)


def test_connect_returns_a_connected_socket() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with Address("127.0.0.1", port).connect(timeout=5) as sock:
            peer, _ = server.accept()
            with peer:
                sock.sendall(b"ping")
                assert peer.recv(4) == b"ping"


def test_connect_to_a_closed_port_names_the_address() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"tcp://127.0.0.1:{port}"):
        Address("127.0.0.1", port).connect(timeout=2)
