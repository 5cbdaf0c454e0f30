"""The dask "do" example: 9 + 39 + 309 = 357.

    pydispatch run examples/do.py

Three `slowinc`s feed two rows of `slowadd`s; three `slowsum`s and a final
`add` combine them. The graph is built in `main()`, which `pydispatch run`
calls.
"""

import operator
import random
import time

from pydispatch import Op, op


def _nap() -> None:
    time.sleep(random.uniform(0, 0.05))


@op
def slowinc(x: int) -> int:
    _nap()
    return x + 1


@op
def slowadd(x: int, y: int) -> int:
    _nap()
    return x + y


@op
def slowsum(*values: int) -> int:
    _nap()
    return sum(values)


def main() -> Op:
    data = [1, 2, 3]
    a = [slowinc(i) for i in data]
    b = [slowadd(x, 10) for x in a]
    c = [slowadd(x, 100) for x in a]
    total = Op(operator.add, Op(operator.add, slowsum(*a), slowsum(*b)), slowsum(*c))
    total.set_label("total")
    return total


if __name__ == "__main__":
    from pydispatch import AsyncExecutor

    (result,) = AsyncExecutor().run(main())
    print(result.unwrap().result())  # 357
