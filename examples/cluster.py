"""The "cluster" example: about 500 nodes, a CollectNode feeding a reduction.

    pydispatch run examples/cluster.py

100 files are loaded and each is processed against one reference table;
98 rolling windows of three processed files follow, then 200 comparisons of
two random windows, and one reduction over all comparisons (a CollectNode).
Every step sleeps a short random time, so the whole run takes a few seconds
on two workers. The result is the number of comparisons, 200.
"""

import random
import time

from pydispatch import CollectNode, Op

# The seed's sleeps (up to 0.5 s per step) scaled down 25 times.
SCALE = 0.04


def _work(longest: float) -> None:
    time.sleep(random.uniform(0, longest * SCALE))


def load(filename: str) -> int:
    _work(0.5)
    return 1


def load_from_sql(address: str) -> int:
    _work(0.5)
    return 1


def process(data: int, reference: int) -> int:
    _work(0.5)
    return 1


def roll(a: int, b: int, c: int) -> int:
    _work(0.2)
    return 1


def compare(a: int, b: int) -> int:
    _work(0.1)
    return 1


def reduction(values: list[int]) -> int:
    _work(1.0)
    return sum(values)


def build(seed: int = 0) -> Op:
    """The graph; `seed` fixes which windows are compared."""
    pick = random.Random(seed).choice
    data = [Op(load, f"mydata-{d}.dat") for d in range(1, 101)]
    reference = Op(load_from_sql, "sql://mytable")
    processed = [Op(process, d, reference) for d in data]
    rolled = [Op(roll, processed[i], processed[i + 1], processed[i + 2]) for i in range(98)]
    compared = [Op(compare, pick(rolled), pick(rolled)) for _ in range(200)]
    return Op(reduction, CollectNode(compared))


outputs = [build()]

if __name__ == "__main__":
    from pydispatch import AsyncExecutor

    (result,) = AsyncExecutor().run(outputs)
    print(result.unwrap().result())  # 200
