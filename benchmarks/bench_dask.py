"""pydispatch's DaskExecutor against driving dask directly, on one cluster, in one run.

    python benchmarks/bench_dask.py [--repeats 5] [--workers 2] [--threads 1]

Three graph shapes of tiny tasks (2,000 independent ops, a 300-long chain, a
1,024-leaf tree reduction), each computed three ways: a raw `client.get` of a
hand-built dask graph, `dask.delayed` + `dask.compute`, and
`DaskExecutor.run` followed by gathering the outputs. The methods take turns
within each repeat (interleaved) so machine noise hits them alike; the report
is the median time of each and the throughput ratio against raw `client.get`.
Every repeat uses fresh arguments, so no result is reused from an earlier one.
"""

from __future__ import annotations

import argparse
import itertools
import operator
import statistics
import time
from collections.abc import Callable
from typing import Any

import dask
import distributed
from dask._task_spec import Task, TaskRef

from pydispatch import DaskExecutor, Op

Shape = Callable[[int], Any]


def independent_raw(salt: int, n: int = 2000) -> tuple[dict[str, Task], list[str]]:
    dsk = {f"add-{salt}-{i}": Task(f"add-{salt}-{i}", operator.add, salt + i, 1) for i in range(n)}
    return dsk, list(dsk)


def chain_raw(salt: int, n: int = 300) -> tuple[dict[str, Task], list[str]]:
    dsk = {f"add-{salt}-0": Task(f"add-{salt}-0", operator.add, salt, 1)}
    for i in range(1, n):
        key = f"add-{salt}-{i}"
        dsk[key] = Task(key, operator.add, TaskRef(f"add-{salt}-{i - 1}"), 1)
    return dsk, [f"add-{salt}-{n - 1}"]


def tree_raw(salt: int, leaves: int = 1024) -> tuple[dict[str, Task], list[str]]:
    dsk = {
        f"add-{salt}-0-{i}": Task(f"add-{salt}-0-{i}", operator.add, salt, i) for i in range(leaves)
    }
    level = list(dsk)
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for j in range(0, len(level), 2):
            key = f"add-{salt}-{depth}-{j}"
            dsk[key] = Task(key, operator.add, TaskRef(level[j]), TaskRef(level[j + 1]))
            nxt.append(key)
        level = nxt
    return dsk, level


def independent_delayed(salt: int, n: int = 2000) -> list[Any]:
    add = dask.delayed(operator.add, pure=True)
    return [add(salt + i, 1) for i in range(n)]


def chain_delayed(salt: int, n: int = 300) -> list[Any]:
    add = dask.delayed(operator.add, pure=True)
    node = add(salt, 1)
    for _ in range(1, n):
        node = add(node, 1)
    return [node]


def tree_delayed(salt: int, leaves: int = 1024) -> list[Any]:
    add = dask.delayed(operator.add, pure=True)
    level = [add(salt, i) for i in range(leaves)]
    while len(level) > 1:
        level = [add(level[j], level[j + 1]) for j in range(0, len(level), 2)]
    return level


def independent_nodes(salt: int, n: int = 2000) -> list[Op]:
    return [Op(operator.add, salt + i, 1) for i in range(n)]


def chain_nodes(salt: int, n: int = 300) -> list[Op]:
    node = Op(operator.add, salt, 1)
    for _ in range(1, n):
        node = Op(operator.add, node, 1)
    return [node]


def tree_nodes(salt: int, leaves: int = 1024) -> list[Op]:
    level = [Op(operator.add, salt, i) for i in range(leaves)]
    while len(level) > 1:
        level = [Op(operator.add, level[j], level[j + 1]) for j in range(0, len(level), 2)]
    return level


SHAPES = {
    "2,000 independent": (independent_raw, independent_delayed, independent_nodes),
    "300-long chain": (chain_raw, chain_delayed, chain_nodes),
    "1,024-leaf tree": (tree_raw, tree_delayed, tree_nodes),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    salts = itertools.count(1_000_000, 1_000_000)

    cluster = distributed.LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    executor = DaskExecutor(cluster.scheduler_address)
    try:

        def run_raw(build: Callable[[int], Any]) -> float:
            dsk, keys = build(next(salts))
            start = time.perf_counter()
            client.get(dsk, keys)
            return time.perf_counter() - start

        def run_delayed(build: Callable[[int], Any]) -> float:
            outs = build(next(salts))
            start = time.perf_counter()
            dask.compute(*outs, scheduler=client.get)
            return time.perf_counter() - start

        def run_pydispatch(build: Callable[[int], Any]) -> float:
            outs = build(next(salts))
            start = time.perf_counter()
            executor.run(outs)
            executor.client.gather(outs)
            elapsed = time.perf_counter() - start
            executor.reset()
            return elapsed

        methods = {"client.get": run_raw, "dask.delayed": run_delayed, "pydispatch": run_pydispatch}
        workers = f"{args.workers} workers x {args.threads} threads"
        print(f"{workers}, {args.repeats} interleaved repeats, throughput relative to client.get")
        print("| shape | pydispatch | dask.delayed |")
        print("|---|---|---|")
        for shape, builders in SHAPES.items():
            runs = list(zip(methods, methods.values(), builders, strict=True))
            for _, method, build in runs:
                method(build)  # warm-up, not counted
            times: dict[str, list[float]] = {name: [] for name in methods}
            for repeat in range(args.repeats):
                for name, method, build in runs[repeat % 3 :] + runs[: repeat % 3]:
                    times[name].append(method(build))
            median = {name: statistics.median(t) for name, t in times.items()}
            raw = median["client.get"]
            ratios = (raw / median["pydispatch"], raw / median["dask.delayed"])
            print(f"| {shape} | {ratios[0]:.2f} | {ratios[1]:.2f} |", flush=True)
    finally:
        executor.close()
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
