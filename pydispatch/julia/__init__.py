"""The Python half of the Julia bridge (room: above the core and the dask adapter).

Importing this package never imports juliacall (the dask scheduler unpickles
graphs that hold :class:`JuliaFunction` objects and has no Julia). Julia starts
only when a runtime starts: on a worker's owner thread through the dask
preload (``--preload pydispatch.julia``), or on first call of a JuliaFunction.
"""

from __future__ import annotations

from .convert import JULIA_ELTYPES, decode, encode
from .function import JuliaFunction, JuliaPackage
from .preload import dask_setup, dask_teardown
from .runtime import (
    Backend,
    JuliaRuntime,
    current_runtime,
    get_runtime,
    start_runtime,
    stop_runtime,
)
from .values import (
    ConversionError,
    JuliaBigInt,
    JuliaBlob,
    JuliaChar,
    JuliaNamedTuple,
    JuliaPair,
    JuliaRational,
    JuliaRuntimeError,
    JuliaSymbol,
    JuliaTaskError,
    UnavailableFunctionError,
)

__all__ = [
    "JULIA_ELTYPES",
    "Backend",
    "ConversionError",
    "JuliaBigInt",
    "JuliaBlob",
    "JuliaChar",
    "JuliaFunction",
    "JuliaNamedTuple",
    "JuliaPackage",
    "JuliaPair",
    "JuliaRational",
    "JuliaRuntime",
    "JuliaRuntimeError",
    "JuliaSymbol",
    "JuliaTaskError",
    "UnavailableFunctionError",
    "current_runtime",
    "dask_setup",
    "dask_teardown",
    "decode",
    "encode",
    "get_runtime",
    "start_runtime",
    "stop_runtime",
]
