"""pydispatch's DaskExecutor against dask.delayed and a raw `client.get`, on one cluster.

    python benchmarks/bench_dask.py [--repeats 3] [--workers 2] [--threads 1] [--only SHAPE]
                                    [--no-fuse]

Starts a `dask scheduler` process and worker processes on 127.0.0.1 (ended by PID
at the end), then computes each graph shape three ways: a raw `client.get` of a
hand-built graph of dask `Task`s, `dask.delayed` + `dask.compute`, and
`DaskExecutor.run` with every output read the way README shows
(`[r.unwrap().result() for r in executor.run(nodes)]`). Task functions are
defined in this script, as a user's would be (they travel by value).

Each shape is run once per method as a warm-up, then the methods take turns
(interleaved, the order rotating each repeat) so machine noise hits them alike.
Every run uses fresh arguments, so nothing is reused from an earlier run. The
report is each method's median time and pydispatch's throughput relative to
dask.delayed and to raw `client.get` (higher is faster).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import dask
import distributed
from dask.task_spec import Task, TaskRef

from pydispatch import DaskExecutor, Op

# -- the user's functions ---------------------------------------------------------------


def add(x: int, y: int) -> int:
    return x + y


def inc(x: int) -> int:
    return x + 1


def slow(x: int) -> int:
    time.sleep(0.1)
    return x


def total(*xs: int) -> int:
    return sum(xs)


def big(x: int) -> dict[str, Any]:
    return {"payload": bytearray(300 * 2**20), "x": x}


def size_of(value: dict[str, Any]) -> int:
    return len(value["payload"])


# -- the shapes, three ways each: raw dask tasks, dask.delayed, pydispatch nodes ----------

Raw = tuple[dict[str, Task], list[str]]


def independent(salt: int, n: int = 2000) -> tuple[Raw, list[Any], list[Op]]:
    raw = {f"add-{salt}-{i}": Task(f"add-{salt}-{i}", add, salt + i, 1) for i in range(n)}
    delayed = [dask.delayed(add, pure=True)(salt + i, 1) for i in range(n)]
    nodes = [Op(add, salt + i, 1) for i in range(n)]
    return (raw, list(raw)), delayed, nodes


def chain(salt: int, n: int = 300) -> tuple[Raw, list[Any], list[Op]]:
    raw = {f"inc-{salt}-0": Task(f"inc-{salt}-0", inc, salt)}
    for i in range(1, n):
        raw[f"inc-{salt}-{i}"] = Task(f"inc-{salt}-{i}", inc, TaskRef(f"inc-{salt}-{i - 1}"))
    d = dask.delayed(inc, pure=True)(salt)
    node = Op(inc, salt)
    for _ in range(1, n):
        d = dask.delayed(inc, pure=True)(d)
        node = Op(inc, node)
    return (raw, [f"inc-{salt}-{n - 1}"]), [d], [node]


def tree(salt: int, leaves: int = 1024) -> tuple[Raw, list[Any], list[Op]]:
    raw = {f"add-{salt}-0-{i}": Task(f"add-{salt}-0-{i}", add, salt, i) for i in range(leaves)}
    keys = list(raw)
    delayed = [dask.delayed(add, pure=True)(salt, i) for i in range(leaves)]
    nodes = [Op(add, salt, i) for i in range(leaves)]
    depth = 0
    while len(keys) > 1:
        depth += 1
        nxt = []
        for j in range(0, len(keys), 2):
            key = f"add-{salt}-{depth}-{j}"
            raw[key] = Task(key, add, TaskRef(keys[j]), TaskRef(keys[j + 1]))
            nxt.append(key)
        keys = nxt
        delayed = [
            dask.delayed(add, pure=True)(delayed[j], delayed[j + 1])
            for j in range(0, len(delayed), 2)
        ]
        nodes = [Op(add, nodes[j], nodes[j + 1]) for j in range(0, len(nodes), 2)]
    return (raw, keys), delayed, nodes


def long_tasks(salt: int, n: int = 32) -> tuple[Raw, list[Any], list[Op]]:
    raw = {f"slow-{salt}-{i}": Task(f"slow-{salt}-{i}", slow, salt + i) for i in range(n)}
    delayed = [dask.delayed(slow, pure=True)(salt + i) for i in range(n)]
    nodes = [Op(slow, salt + i) for i in range(n)]
    return (raw, list(raw)), delayed, nodes


def mixed(salt: int, n_long: int = 16, per_long: int = 30) -> tuple[Raw, list[Any], list[Op]]:
    """16 long tasks (0.1 s), 30 tiny tasks on each one's value, one tiny total of them all."""
    raw: dict[str, Task] = {}
    tiny_keys = []
    delayed_tiny = []
    node_tiny = []
    for i in range(n_long):
        lk = f"slow-{salt}-{i}"
        raw[lk] = Task(lk, slow, salt + i)
        ld = dask.delayed(slow, pure=True)(salt + i)
        ln = Op(slow, salt + i)
        for j in range(per_long):
            tk = f"add-{salt}-{i}-{j}"
            raw[tk] = Task(tk, add, TaskRef(lk), j)
            tiny_keys.append(tk)
            delayed_tiny.append(dask.delayed(add, pure=True)(ld, j))
            node_tiny.append(Op(add, ln, j))
    raw[f"total-{salt}"] = Task(f"total-{salt}", total, *[TaskRef(k) for k in tiny_keys])
    delayed = [dask.delayed(total, pure=True)(*delayed_tiny)]
    nodes = [Op(total, *node_tiny)]
    return (raw, [f"total-{salt}"]), delayed, nodes


def big_values(salt: int, n: int = 4) -> tuple[Raw, list[Any], list[Op]]:
    raw = {f"big-{salt}-{i}": Task(f"big-{salt}-{i}", big, salt + i) for i in range(n)}
    delayed = [dask.delayed(big, pure=True)(salt + i) for i in range(n)]
    nodes = [Op(big, salt + i) for i in range(n)]
    return (raw, list(raw)), delayed, nodes


SHAPES: dict[str, tuple[Callable[[int], Any], int]] = {
    "2,000 independent tiny": (independent, 2000),
    "300-long chain": (chain, 300),
    "1,024-leaf tree (2,047 nodes)": (tree, 2047),
    "32 independent 0.1 s tasks": (long_tasks, 32),
    "mixed: 16 long + 480 tiny + 1": (mixed, 497),
    "4 tasks returning 300 MB each": (big_values, 4),
}


# -- a cluster of processes --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_cluster(workers: int, threads: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"],
            **quiet,  # type: ignore[arg-type]
        )
    ]  # fmt: skip
    for _ in range(workers):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny",
                 "--nthreads", str(threads), "--host", "127.0.0.1", "--no-dashboard"],
                **quiet,  # type: ignore[arg-type]
            )
        )  # fmt: skip
    return address, procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="run only shapes whose name contains this")
    parser.add_argument("--no-fuse", action="store_true", help="pydispatch with fuse=False")
    args = parser.parse_args()
    salts = itertools.count(1_000_000, 1_000_000)

    address, procs = start_cluster(args.workers, args.threads)
    try:
        client = distributed.Client(address, timeout=30, set_as_default=False)
        client.wait_for_workers(args.workers, timeout=60)
        executor = DaskExecutor(address, fuse=not args.no_fuse)

        def run_raw(build: Callable[[int], Any]) -> float:
            (dsk, keys), _, _ = build(next(salts))
            start = time.perf_counter()
            client.get(dsk, keys)
            return time.perf_counter() - start

        def run_delayed(build: Callable[[int], Any]) -> float:
            _, outs, _ = build(next(salts))
            start = time.perf_counter()
            dask.compute(*outs, scheduler=client.get)
            return time.perf_counter() - start

        def run_pydispatch(build: Callable[[int], Any]) -> float:
            _, _, nodes = build(next(salts))
            start = time.perf_counter()
            [r.unwrap().result() for r in executor.run(nodes)]
            elapsed = time.perf_counter() - start
            executor.reset()  # drops the results (not the learned durations)
            return elapsed

        methods = {"client.get": run_raw, "dask.delayed": run_delayed, "pydispatch": run_pydispatch}
        print(
            f"{args.workers} worker processes x {args.threads} threads, scheduler process; "
            f"median of {args.repeats} interleaved repeats after a warm-up"
            + (", pydispatch with fuse=False" if args.no_fuse else "")
        )
        print("| shape | client.get | dask.delayed | pydispatch | vs delayed | vs client.get |")
        print("|---|---|---|---|---|---|")
        for shape, (build, n) in SHAPES.items():
            if args.only not in shape:
                continue
            runs = list(methods.items())
            for _, method in runs:
                method(build)  # warm-up, not counted
            times: dict[str, list[float]] = {name: [] for name in methods}
            for repeat in range(args.repeats):
                turn = repeat % len(runs)
                for name, method in runs[turn:] + runs[:turn]:
                    times[name].append(method(build))
            median = {name: statistics.median(t) for name, t in times.items()}
            cells = " | ".join(
                f"{n / median[name]:,.0f}/s ({median[name]:.3f} s)" for name in methods
            )
            print(
                f"| {shape} | {cells} "
                f"| {median['dask.delayed'] / median['pydispatch']:.2f}x "
                f"| {median['client.get'] / median['pydispatch']:.2f}x |",
                flush=True,
            )
        executor.close()
        client.close()
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
