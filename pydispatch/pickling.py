"""cloudpickle that keeps source file names, so tracebacks of shipped code stay readable.

cloudpickle replaces the file name of every code object it pickles with
``<dynamic-code>``, so a traceback from a worker that ran a function sent
by value showed neither the file nor the source line. `dumps` pickles as
cloudpickle does, but every code object (nested functions, lambdas,
comprehensions and helper functions included) keeps its own file name.
Loading needs only `cloudpickle.loads` (and pydispatch importable).
"""

from __future__ import annotations

import io
import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = ["dumps"]

_CODE_REDUCE = cloudpickle.Pickler.dispatch_table[types.CodeType]


def _code_keeping_filename(code: types.CodeType) -> tuple[Any, ...]:
    """cloudpickle's reduction of `code`, with its real file name put back on loading."""
    rebuild, args = _CODE_REDUCE(code)
    return (_named_code, (rebuild, args, code.co_filename))


def _named_code(rebuild: Callable[..., types.CodeType], args: Any, filename: str) -> Any:
    return rebuild(*args).replace(co_filename=filename)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, except that code objects keep their file names.

    Code objects nested in others (inner functions, lambdas, comprehensions)
    go through the same reducer, as constants of the outer one.
    """

    dispatch_table = ChainMap(
        {types.CodeType: _code_keeping_filename}, cloudpickle.Pickler.dispatch_table
    )


def dumps(obj: Any) -> bytes:
    """`cloudpickle.dumps(obj)`, keeping the source file name of every code object in it."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
        return file.getvalue()
