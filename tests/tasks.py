"""The task functions of the tests, defined once.

Module-level, so that `ParallelExecutor` worker processes can load them; dask
workers cannot import this module, so pydispatch ships them by value, as it does
a user's script.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any


class MyType:
    """A plain value of a class from another module (Dispatcher.jl's OtherModule.MyType)."""

    def __init__(self, x: Any):
        self.x = x

    def __add__(self, other: Any) -> MyType:
        return MyType(self.x + other)

    def __mul__(self, other: MyType) -> Any:
        return self.x * other.x


def edges_by_number(graph: Any) -> set[tuple[int, int]]:
    """The graph's edges as (parent number, child number) pairs."""
    return {(graph.node_id(p), graph.node_id(c)) for p, c in graph.edges()}


# ----------------------------------------------------------------- node functions


def three() -> int:
    return 3


def identity(x: Any) -> Any:
    return x


def factorials(x: int) -> tuple[int, int]:
    return math.factorial(x), math.factorial(2 * x)


class ApplicationError(Exception):
    pass


def factorial_then_fail(x: int) -> tuple[int, int]:
    math.factorial(x)
    raise ApplicationError("Application Error")


def put_half(comm: Any, x: float) -> None:
    comm.put(x / 2)


def count_call(path: str) -> int:
    """Append one line to `path` (a cross-process call counter); the new count."""
    with open(path, "a") as f:
        f.write("x\n")
    return Path(path).read_text().count("\n")


def calls(path: Path | str) -> int:
    """How many times `count_call(path)` ran."""
    p = Path(path)
    return p.read_text().count("\n") if p.exists() else 0


class FlakyError(Exception):
    pass


def flaky(path: str, failures: int, value: Any) -> Any:
    """Fail with `FlakyError` on the first `failures` calls, then return `value`."""
    n = count_call(path)
    if n <= failures:
        raise FlakyError(f"attempt {n} of a flaky node")
    return value


def die_once(marker: str, value: Any) -> Any:
    """Kill this worker process the first time (marker file absent), then return `value`."""
    if not os.path.exists(marker):
        Path(marker).write_text("died\n")
        os._exit(17)
    return value


def die_always(value: Any) -> Any:
    os._exit(17)


def record(path: str, value: Any = None) -> Any:
    """Count a call in `path`, return `value`."""
    count_call(path)
    return value


def wait_for(event: Any, value: Any = None, limit: float = 30.0) -> Any:
    """Wait (bounded) until `event` is set, then return `value`."""
    if not event.wait(limit):
        raise TimeoutError("the test never set the event")
    return value


def set_then_fail(event: Any, message: str = "first failure") -> Any:
    event.set()
    raise ApplicationError(message)


def wait_then_fail(event: Any, message: str = "second failure") -> Any:
    wait_for(event)
    raise ApplicationError(message)


def fail(message: str = "boom") -> Any:
    raise ApplicationError(message)


def put_four(ch: Any) -> Any:
    ch.append(4)
    return ch


def take_add(ch: Any, k: int) -> None:
    x = ch.pop(0)
    ch.append(x + k)


def add(*xs: Any) -> Any:
    return sum(xs)


def mul(x: Any, y: Any) -> Any:
    return x * y


def inc(x: Any) -> Any:
    return x + 1


def slowadd(x: int, y: int) -> int:
    return x + y


def slowinc(x: int) -> int:
    return x + 1


def slowsum(*a: int) -> int:
    return sum(a)


def mapped_list(func: Any, *iterables: Any) -> list[Any]:
    return list(map(func, *iterables))


def distinct(iterable: Any) -> list[Any]:
    """Unique elements, first occurrence order (IterTools.distinct)."""
    seen: set[Any] = set()
    out = []
    for x in iterable:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def nth(iterable: Any, n: int) -> Any:
    for i, x in enumerate(iterable):
        if i == n:
            return x
    raise IndexError(n)


def one(*args: Any) -> int:
    return 1


# ----------------------------------------------------------------- property-test functions


def combine(c: int, *xs: int, bonus: int = 0) -> int:
    return (c + bonus * 7 + sum(x * (k + 1) for k, x in enumerate(xs))) % 1_000_003


def pair(c: int, x: int) -> tuple[int, int]:
    return (x, (x * c) % 97)


def total(xs: Any) -> int:
    return sum(xs) % 1_000_003


class Unlucky(Exception):
    pass


def maybe_fail(x: int) -> int:
    """Fail for multiples of 5."""
    if x % 5 == 0:
        raise Unlucky(f"unlucky {x}")
    return x + 1


class WeirdError(Exception):
    """Pickles, but cannot be unpickled: __init__ needs two arguments, args holds one."""

    def __init__(self, a: Any, b: Any):
        super().__init__(a)


def raise_weird(path: str) -> Any:
    count_call(path)
    raise WeirdError("weird failure", 2)


def hang_after_recording_pid(path: str, limit: float = 60.0) -> None:
    """Write this process's PID to `path`, then hang (at most `limit` seconds)."""
    import os
    import time

    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(limit)


# ---------------------------------------------------------------- on dask workers


def half(x: float) -> float:
    return x / 2


def where_am_i(_: object = None) -> str:
    """The address of the dask worker running this task."""
    import distributed

    return str(distributed.get_worker().address)


def record_call(path: str, value: int) -> int:
    with open(path, "a") as log:
        log.write(f"{value}\n")
    return value


def fail_first(path: str, times: int, exc_type: type[Exception] = ConnectionError) -> str:
    """Fails `times` times (counted in a file), then succeeds."""
    count = int(Path(path).read_text()) if Path(path).exists() else 0
    Path(path).write_text(str(count + 1))
    if count < times:
        raise exc_type(f"attempt {count + 1} fails")
    return f"ok after {count + 1}"


def wait_for_file(path: str, value: int = 0) -> int:
    """Blocks until `path` exists (at most 60 s); returns `value`."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    return value


def announce_then_wait(announce: str, gate: str, value: int) -> int:
    Path(announce + ".tmp").write_text(str(os.getpid()))
    os.replace(announce + ".tmp", announce)
    return wait_for_file(gate, value)


def fail_after_file(path: str) -> int:
    """Wait until `path` exists (at most 60 s), then fail."""
    wait_for_file(path)
    raise ApplicationError("failed after the gate opened")


def divide(x: int, y: int) -> float:
    return x / y


def boom(x: int) -> int:
    raise ValueError(f"bad {x}")


def stamp(i: int) -> int:
    """When this task ran (monotonic ns: comparable within one worker process)."""
    time.sleep(0.01)
    return time.monotonic_ns()


def kill_worker_once(folder: str, value: int) -> int:
    """Record this worker's PID; the first time ever, kill this worker."""
    Path(folder, f"ran-{os.getpid()}").touch()
    flag = Path(folder, "killed")
    if not flag.exists():
        flag.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def retry_on_connection(err: BaseException) -> bool:
    return isinstance(err, ConnectionError)
