"""The quick start: max(3, 4) = 4.

    pydispatch run examples/quickstart.py

`pydispatch run` runs the graph that `outputs` names, on an embedded local
dask cluster (or on `--scheduler ADDRESS`), and prints `max = 4`.
"""

from pydispatch import Op


def three() -> int:
    return 3


def four() -> int:
    return 4


a = Op(three)
b = Op(four)
c = Op(max, a, b)

outputs = [c]

if __name__ == "__main__":
    # `python examples/quickstart.py` runs it in this process instead.
    from pydispatch import AsyncExecutor

    (result,) = AsyncExecutor().run(outputs)
    print(result.unwrap().result())  # 4
