"""Plain-Python values that stand for Julia things outside the Julia owner thread.

Nothing here imports juliacall: these objects are pickled into dask graphs and
results, and the scheduler (which has no Julia) must be able to unpickle them.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

from ..errors import (
    ConversionError,
    JuliaRuntimeError,
    JuliaTaskError,
    UnavailableFunctionError,
)

__all__ = [
    "ConversionError",
    "JuliaBigInt",
    "JuliaBlob",
    "JuliaChar",
    "JuliaNamedTuple",
    "JuliaPair",
    "JuliaRational",
    "JuliaRuntimeError",
    "JuliaSymbol",
    "JuliaTaskError",
    "UnavailableFunctionError",
]


class JuliaBlob:
    """An opaque Julia value, serialized with Julia's ``Serialization`` stdlib.

    Julia values with no Python equivalent (structs, symbols-keyed named types,
    functions, ...) travel as a blob: Python only stores and ships the bytes; the
    next Julia task (or a Julia client) deserializes them. ``jltype`` is the
    Julia type's name, for display and for checks.
    """

    __slots__ = ("data", "jltype")

    def __init__(self, data: bytes, jltype: str) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"JuliaBlob data must be bytes, not {type(data).__name__}")
        if not isinstance(jltype, str) or not jltype:
            raise TypeError("JuliaBlob jltype must be a non-empty str (the Julia type name)")
        self.data = bytes(data)
        self.jltype = jltype

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaBlob, (self.data, self.jltype))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JuliaBlob):
            return NotImplemented
        return self.data == other.data and self.jltype == other.jltype

    def __hash__(self) -> int:
        return hash((self.data, self.jltype))

    def __dask_tokenize__(self) -> tuple[str, str, str]:
        return ("pydispatch.julia.JuliaBlob", self.jltype, hashlib.sha256(self.data).hexdigest())

    def __repr__(self) -> str:
        return f"JuliaBlob(<{len(self.data)} bytes>, jltype={self.jltype!r})"

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + len(self.data)


# -- Julia values whose Python form alone would lose their Julia type -------------
# Each is a subclass of the natural Python type (so Python code uses it as that
# type) that remembers the Julia type, so it goes back to Julia unchanged: a Symbol
# stays a Symbol, `big(2)` stays a BigInt, `Int32(1)//2` keeps Int32, and so on.


class JuliaSymbol(str):
    """A Julia ``Symbol`` (a ``str`` to Python)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JuliaSymbol({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaSymbol, (str(self),))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("pydispatch.julia.JuliaSymbol", str(self))


class JuliaChar(str):
    """A Julia ``Char`` (a one-character ``str`` to Python)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JuliaChar({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaChar, (str(self),))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("pydispatch.julia.JuliaChar", str(self))


class JuliaBigInt(int):
    """A Julia ``BigInt`` (an ``int`` to Python, even when it fits in 64 bits)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JuliaBigInt({int(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaBigInt, (int(self),))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("pydispatch.julia.JuliaBigInt", str(int(self)))


class JuliaRational(Fraction):
    """A Julia ``Rational{T}`` (a ``Fraction`` to Python) that remembers ``T``."""

    __slots__ = ("inttype",)
    inttype: str

    def __new__(cls, numerator: int, denominator: int, inttype: str) -> JuliaRational:
        self = super().__new__(cls, numerator, denominator)
        self.inttype = str(inttype)
        return self

    def __repr__(self) -> str:
        return f"JuliaRational({self.numerator}, {self.denominator}, {self.inttype!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaRational, (self.numerator, self.denominator, self.inttype))

    def __dask_tokenize__(self) -> tuple[str, str, str, str]:
        return (
            "pydispatch.julia.JuliaRational",
            self.inttype,
            str(self.numerator),
            str(self.denominator),
        )

    # Fraction copies itself with `self.__class__(num, den)`, which would drop the type.
    def __copy__(self) -> JuliaRational:
        return self

    def __deepcopy__(self, memo: Any) -> JuliaRational:
        return self


class JuliaNamedTuple(dict):
    """A Julia ``NamedTuple`` (a ``dict`` with ``str`` keys, in field order, to Python)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"JuliaNamedTuple({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaNamedTuple, (dict(self),))

    def __dask_tokenize__(self) -> tuple[str, list[tuple[str, Any]]]:
        # Field order is part of a NamedTuple's type: keep it.
        return ("pydispatch.julia.JuliaNamedTuple", list(self.items()))


class JuliaPair(tuple):
    """A Julia ``Pair`` (a 2-tuple to Python)."""

    __slots__ = ()

    def __new__(cls, first: Any, second: Any) -> JuliaPair:
        return super().__new__(cls, (first, second))

    def __repr__(self) -> str:
        return f"JuliaPair({self[0]!r}, {self[1]!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaPair, (self[0], self[1]))

    def __dask_tokenize__(self) -> tuple[str, Any, Any]:
        return ("pydispatch.julia.JuliaPair", self[0], self[1])


def _register_tokens() -> None:
    # dask tokenizes a subclass of str/int/tuple/dict/Fraction by its base type's
    # rule and never asks for __dask_tokenize__: register ours, so that a Julia
    # Symbol and a String (or a NamedTuple and a Dict) get different content keys.
    from dask.base import normalize_token

    @normalize_token.register(
        (JuliaSymbol, JuliaChar, JuliaBigInt, JuliaRational, JuliaNamedTuple, JuliaPair)
    )
    def _julia_value_token(value: Any) -> Any:
        return normalize_token(value.__dask_tokenize__())


_register_tokens()
