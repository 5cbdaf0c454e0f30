"""Malformed input across the public API: the documented exception, quoting the value.

Each row: the call, the exception type it must raise, the text that quotes the
offending value, and the text that says what would be accepted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from real_cluster import Cluster

from pydispatch import (
    Address,
    AsyncExecutor,
    Backoff,
    Client,
    CollectNode,
    DaskExecutor,
    DispatcherError,
    DispatchGraph,
    IndexNode,
    Op,
    ParallelExecutor,
    Result,
    Worker,
    get_key,
    op,
    parse_address,
)

ADDRESS_FORMS = "expected [tcp://|tls://]HOST[:PORT]"
NODE_KINDS = "(Op, DataNode, IndexNode, CollectNode)"
NOWHERE = "127.0.0.1:1"  # nothing listens: a call that got past validation would fail otherwise


def one() -> int:
    return 1


@dataclass(frozen=True)
class Case:
    call: Callable[[], Any]
    raises: type[BaseException]
    quotes: str
    accepts: str


NODE = Op(one)
OTHER = Op(one)
ASYNC = AsyncExecutor()

CASES: dict[str, Case] = {
    # addresses
    "address empty": Case(lambda: Address(""), ValueError, "''", ADDRESS_FORMS),
    "address scheme only": Case(lambda: Address("tcp://"), ValueError, "'tcp://'", ADDRESS_FORMS),
    "address port too big": Case(
        lambda: Address("host:99999"), ValueError, "'host:99999'", ADDRESS_FORMS
    ),
    "address udp": Case(lambda: Address("udp://x:1"), ValueError, "'udp://x:1'", "tcp, tls"),
    "address open bracket": Case(lambda: Address("[::1"), ValueError, "'[::1'", "closing ']'"),
    "address five octets": Case(
        lambda: Address("1.2.3.4.5:80"), ValueError, "'1.2.3.4.5:80'", "nor a host name"
    ),
    "address negative port": Case(
        lambda: Address("127.0.0.1:-1"), ValueError, "'127.0.0.1:-1'", ADDRESS_FORMS
    ),
    "address port not a number": Case(
        lambda: parse_address("127.0.0.1:abc"), ValueError, "'abc'", ADDRESS_FORMS
    ),
    "address not a string": Case(lambda: Address(8786), ValueError, "8786", "is a string"),  # type: ignore[arg-type]
    "address None": Case(lambda: parse_address(None), ValueError, "None", ADDRESS_FORMS),  # type: ignore[arg-type]
    "address host, port out of range": Case(
        lambda: Address("127.0.0.1", 70000), ValueError, "70000", "between 0 and 65535"
    ),
    "address http scheme": Case(
        lambda: Address("127.0.0.1", 80, scheme="http"), ValueError, "'http'", "tcp, tls"
    ),
    "address bare IPv6": Case(
        lambda: parse_address("::1:8786"), ValueError, "'::1:8786'", "[::1]:8786"
    ),
    "address with a space": Case(
        lambda: Address("my host:80"), ValueError, "'my host:80'", ADDRESS_FORMS
    ),
    "DaskExecutor empty address": Case(lambda: DaskExecutor(""), ValueError, "''", ADDRESS_FORMS),
    "Client scheme only": Case(lambda: Client("tcp://"), ValueError, "'tcp://'", ADDRESS_FORMS),
    "Worker udp address": Case(
        lambda: Worker("udp://x:1"), ValueError, "'udp://x:1'", "tcp://host:port, tls://host:port"
    ),
    # nodes
    "Op of an int": Case(lambda: Op(42), TypeError, "42", "pass a function"),  # type: ignore[arg-type]
    "Op of a string": Case(lambda: Op("print"), TypeError, "'print'", "pass a function"),  # type: ignore[arg-type]
    "@op of an int": Case(lambda: op(3), TypeError, "3 (int)", "decorates functions"),  # type: ignore[call-overload]
    "CollectNode of ints": Case(
        lambda: CollectNode([1, 2]),  # type: ignore[list-item]
        TypeError,
        "got 1",
        "wrap constants in DataNode",
    ),
    "IndexNode of an int": Case(lambda: IndexNode(5, 0), TypeError, "5", "needs a node"),  # type: ignore[arg-type]
    "get_key of an int": Case(lambda: get_key(3), TypeError, "3", "takes a node"),  # type: ignore[arg-type]
    "DispatchGraph of an int": Case(
        lambda: DispatchGraph([1]),  # type: ignore[list-item]
        TypeError,
        "got 1 (int)",
        NODE_KINDS,
    ),
    "unpacking a node": Case(lambda: tuple(NODE), TypeError, "'one'", "Index it instead"),
    # retries
    "negative retries": Case(lambda: AsyncExecutor(retries=-1), ValueError, "-1", "int >= 0"),
    "float retries": Case(lambda: AsyncExecutor(retries=1.5), ValueError, "1.5", "int >= 0"),  # type: ignore[arg-type]
    "bool retries": Case(lambda: ParallelExecutor(retries=True), ValueError, "True", "int >= 0"),
    "string retries": Case(lambda: AsyncExecutor(retries="3"), ValueError, "'3'", "int >= 0"),  # type: ignore[arg-type]
    "DaskExecutor negative retries": Case(
        lambda: DaskExecutor(NOWHERE, retries=-2), ValueError, "-2", "int >= 0"
    ),
    "non-callable retry predicate": Case(
        lambda: AsyncExecutor(retry_on=[3]),  # type: ignore[list-item]
        TypeError,
        "got 3",
        "callables taking the exception",
    ),
    "retry_on an int": Case(
        lambda: AsyncExecutor(retry_on=3),  # type: ignore[arg-type]
        TypeError,
        "got 3 (int)",
        "a callable or a list of callables",
    ),
    "retry_on a string": Case(
        lambda: AsyncExecutor(retry_on="abc"),  # type: ignore[arg-type]
        TypeError,
        "'abc'",
        "a callable or a list of callables",
    ),
    "negative backoff": Case(lambda: Backoff(first=-1), ValueError, "-1", "number >= 0"),
    "backoff not a Backoff": Case(
        lambda: AsyncExecutor(backoff=2),  # type: ignore[arg-type]
        TypeError,
        "got 2",
        "pydispatch.Backoff",
    ),
    # run()
    "run an int": Case(lambda: ASYNC.run(5), TypeError, "got 5 (int)", NODE_KINDS),  # type: ignore[arg-type]
    "run None": Case(lambda: ASYNC.run(None), TypeError, "got None", NODE_KINDS),  # type: ignore[arg-type]
    "run a list with a string": Case(
        lambda: ASYNC.run([NODE, "x"]),  # type: ignore[list-item]
        TypeError,
        "'x' (str)",
        NODE_KINDS,
    ),
    "inputs not nodes": Case(
        lambda: ASYNC.run(NODE, inputs=[3]),  # type: ignore[list-item]
        TypeError,
        "got 3 (int)",
        NODE_KINDS,
    ),
    "input_map key not a node": Case(
        lambda: ASYNC.run(NODE, input_map={"a": 1}),  # type: ignore[dict-item]
        TypeError,
        "'a' (str)",
        NODE_KINDS,
    ),
    "input_map key not in the graph": Case(
        lambda: ASYNC.run(NODE, input_map={OTHER: 1}),
        ValueError,
        "Op('one')",
        "only nodes the outputs depend on",
    ),
    "input_map not a mapping": Case(
        lambda: ASYNC.run(NODE, input_map=[1, 2]),  # type: ignore[arg-type]
        TypeError,
        "[1, 2]",
        "mapping of node -> value",
    ),
    "timeout zero": Case(lambda: ASYNC.run(NODE, timeout=0), ValueError, "got 0", "> 0 or None"),
    "timeout negative": Case(
        lambda: ASYNC.run(NODE, timeout=-1), ValueError, "got -1", "> 0 or None"
    ),
    "timeout a string": Case(
        lambda: ASYNC.run(NODE, timeout="10"),  # type: ignore[arg-type]
        ValueError,
        "'10'",
        "> 0 or None",
    ),
    "timeout nan": Case(
        lambda: ASYNC.run(NODE, timeout=float("nan")), ValueError, "nan", "> 0 or None"
    ),
    "result before any run": Case(
        lambda: OTHER.result(), DispatcherError, "'one'", "executor.run([node])"
    ),
    "unwrap_error of a success": Case(
        lambda: Result(NODE).unwrap_error(), ValueError, "Op('one')", "not an error"
    ),
    # DaskExecutor, Client, Worker options
    "local with no workers": Case(
        lambda: DaskExecutor.local(n_workers=0), ValueError, "got 0", "int >= 1 or None"
    ),
    "local negative threads": Case(
        lambda: DaskExecutor.local(threads_per_worker=-1), ValueError, "-1", "int >= 1 or None"
    ),
    "local workers as a string": Case(
        lambda: DaskExecutor.local(n_workers="2"),  # type: ignore[arg-type]
        ValueError,
        "'2'",
        "int >= 1 or None",
    ),
    "bad ship_functions": Case(
        lambda: DaskExecutor(NOWHERE, ship_functions="sometimes"),  # type: ignore[arg-type]
        ValueError,
        "'sometimes'",
        "'auto', 'always', 'never'",
    ),
    "ship_functions a bool": Case(
        lambda: Client(NOWHERE, ship_functions=True),  # type: ignore[arg-type]
        ValueError,
        "True",
        "'auto', 'always', 'never'",
    ),
    "connect_timeout zero": Case(
        lambda: DaskExecutor(NOWHERE, connect_timeout=0), ValueError, "got 0", "seconds > 0"
    ),
    "connect_timeout a string": Case(
        lambda: Client(NOWHERE, connect_timeout="5"),  # type: ignore[arg-type]
        ValueError,
        "'5'",
        "seconds > 0",
    ),
    "Worker negative start_timeout": Case(
        lambda: Worker(NOWHERE, start_timeout=-1), ValueError, "-1", "seconds > 0"
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_is_refused_quoting_it(name: str) -> None:
    case = CASES[name]
    started = time.monotonic()
    with pytest.raises(case.raises) as info:
        case.call()
    assert time.monotonic() - started < 5, "validation must not wait for anything"
    message = str(info.value)
    assert case.quotes in message, f"{name}: the message does not quote the value: {message}"
    assert case.accepts in message, f"{name}: the message does not say what is accepted: {message}"


def test_the_table_is_big_enough() -> None:
    assert len(CASES) + len(CLIENT_CASES) + len(CLI_CASES) >= 30


# -- a connected Client --------------------------------------------------------------


@pytest.fixture(scope="module")
def client(dask_cluster: Cluster) -> Iterator[Client]:
    connected = Client(dask_cluster.address)
    yield connected
    if connected.status == "running":
        connected.shutdown()


CLIENT_CASES: dict[str, tuple[Callable[[Client], Any], type[BaseException], str, str]] = {
    "submit a string": (lambda c: c.submit("x"), TypeError, "'x' (str)", NODE_KINDS),  # type: ignore[arg-type]
    "submit to workers=5": (
        lambda c: c.submit(NODE, workers=5),  # type: ignore[arg-type]
        TypeError,
        "got 5 (int)",
        "a worker address or a list of them",
    ),
    "submit to a udp worker": (
        lambda c: c.submit(NODE, workers="udp://x:1"),
        ValueError,
        "'udp://x:1'",
        ADDRESS_FORMS,
    ),
    "submit to a missing worker": (
        lambda c: c.submit(NODE, workers="tcp://127.0.0.1:1"),
        ValueError,
        "tcp://127.0.0.1:1",
        "connected workers: tcp://127.0.0.1:",
    ),
    "gather an int": (lambda c: c.gather(3), TypeError, "got 3 (int)", NODE_KINDS),  # type: ignore[arg-type]
    "gather one node": (lambda c: c.gather(NODE), TypeError, "Op('one')", "pass [node]"),  # type: ignore[arg-type]
    "cancel one node": (lambda c: c.cancel(NODE), TypeError, "Op('one')", "pass [node]"),  # type: ignore[arg-type]
    "replicate ints": (lambda c: c.replicate([1]), TypeError, "got 1 (int)", NODE_KINDS),  # type: ignore[list-item]
    "result of a string": (lambda c: c.result("x"), TypeError, "'x' (str)", NODE_KINDS),  # type: ignore[arg-type]
    "result with a negative timeout": (
        lambda c: c.result(NODE, timeout=-1),
        ValueError,
        "got -1",
        "seconds > 0",
    ),
}


@pytest.mark.parametrize("name", list(CLIENT_CASES))
def test_malformed_client_calls_are_refused_quoting_them(client: Client, name: str) -> None:
    call, raises, quotes, accepts = CLIENT_CASES[name]
    started = time.monotonic()
    with pytest.raises(raises) as info:
        call(client)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert quotes in message, f"{name}: {message}"
    assert accepts in message, f"{name}: {message}"


# -- the command line (through a subprocess: exit code 2 and a message) ------------------

NO_GRAPH = "x = 1\n"
NOT_A_GRAPH = "outputs = 5\n"

CLI_CASES: dict[str, tuple[list[str], str, str]] = {
    "worker --bogus": (["worker", "--bogus"], "--bogus", "usage:"),
    "worker --nworkers 0": (["worker", "--nworkers", "0"], "'0'", "1 or more"),
    "worker --nthreads abc": (["worker", "--nthreads", "abc"], "'abc'", "whole number"),
    "worker udp address": (["worker", "udp://x:1", "--dry-run"], "'udp://x:1'", ADDRESS_FORMS),
    "worker missing cert file": (
        ["worker", NOWHERE, "--tls-cert", "/nonexistent.pem", "--dry-run"],
        "'/nonexistent.pem'",
        "no such file",
    ),
    "run a file defining no graph": (["run", "{no_graph}"], "no_graph.py", "define a module-level"),
    "run a file whose outputs is 5": (["run", "{not_a_graph}"], "`outputs` is 5", "must be a node"),
    "run a missing file": (["run", "{missing}"], "missing.py", "give the path of a Python file"),
    "run --timeout -1": (["run", "{no_graph}", "--timeout", "-1"], "'-1'", "more than 0 seconds"),
    "run --workers with --scheduler": (
        ["run", "{no_graph}", "--workers", "2", "--scheduler", NOWHERE],
        "--workers",
        "pydispatch worker ADDRESS --nworkers N",
    ),
    "unknown command": (["frobnicate"], "'frobnicate'", "choose from"),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_malformed_command_lines_exit_2_quoting_them(tmp_path: Path, name: str) -> None:
    args, quotes, accepts = CLI_CASES[name]
    files = {
        "no_graph": tmp_path / "no_graph.py",
        "not_a_graph": tmp_path / "not_a_graph.py",
        "missing": tmp_path / "missing.py",
    }
    files["no_graph"].write_text(NO_GRAPH)
    files["not_a_graph"].write_text(NOT_A_GRAPH)
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "pydispatch", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert quotes in done.stderr, done.stderr
    assert accepts in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
