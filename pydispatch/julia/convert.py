"""The conversion policy between Python values and Julia values.

Values cross the Python/Julia boundary as *tagged trees*: nested tuples whose
first item is a tag string, built only from ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``tuple`` and ``list``. The policy (which Python
type becomes which Julia type, how arrays are laid out, what is copied) lives
here, in Python, where it is tested; the Julia side (``DispatchBridge.totagged``
and ``DispatchBridge.fromtagged``) only builds or reads the tags.

================  ===================================  =========================
tag               Python value                         Julia value
================  ===================================  =========================
``nothing``       ``None``                             ``nothing``
``bool``          ``bool``                             ``Bool``
``int``           ``int`` (fits in 64 bits)            ``Int64``
``bigint``        ``int`` (larger), or                 ``BigInt``
                  :class:`JuliaBigInt` (any size)
``float``         ``float``                            ``Float64``
``complex``       ``complex``                          ``ComplexF64``
``num``           numpy scalar (e.g. ``np.float32``)   that type (``Float32``, ...)
``rational``      ``fractions.Fraction``, or           ``Rational{T}`` (``T`` an
                  :class:`JuliaRational` (keeps T)     integer type or BigInt)
``str``           ``str``                              ``String``
``symbol``        :class:`JuliaSymbol` (a ``str``)     ``Symbol``
``char``          :class:`JuliaChar` (a ``str``)       ``Char``
``tuple``         ``tuple``                            ``Tuple``
``pair``          :class:`JuliaPair` (a 2-``tuple``)   ``Pair``
``list``          ``list``                             ``Vector`` (element type
                                                       narrowed)
``dict``          ``dict``                             ``Dict``
``namedtuple``    :class:`JuliaNamedTuple` (a          ``NamedTuple``
                  ``dict`` with ``str`` keys)
``set``           ``set``/``frozenset``                ``Set``
``array``         ``numpy.ndarray`` (a copy)           ``Array{T,N}`` (a copy)
``blob``          :class:`JuliaBlob`                   any other Julia value
================  ===================================  =========================

Arrays of the element types in :data:`JULIA_ELTYPES` cross as raw column-major
little-endian bytes, so a Julia ``Matrix`` becomes a numpy array with the same
shape and indices (Fortran order) and back. ``bytes`` go to Julia as a
``Vector{UInt8}`` (and come back as a ``uint8`` array). Other Python values
raise :class:`ConversionError`.

Every Julia value that crosses to Python and back comes back with its Julia type:
where the plain Python value would lose it (a ``Symbol`` as ``str``, a small
``BigInt`` as ``int``, ``Rational{Int32}``, ``NamedTuple``, ``Pair``), the
Python value is a subclass of the plain type that remembers it
(:mod:`pydispatch.julia.values`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from .values import (
    ConversionError,
    JuliaBigInt,
    JuliaBlob,
    JuliaChar,
    JuliaNamedTuple,
    JuliaPair,
    JuliaRational,
    JuliaSymbol,
    JuliaTaskError,
)

__all__ = [
    "JULIA_ELTYPES",
    "Tagged",
    "decode",
    "decode_result",
    "encode",
]

Tagged = tuple[Any, ...]
# Keyword arguments for a Julia call: ``[name, tagged value]`` entries (see `encode_kwargs`).
TaggedKwargs = list[list[Any]]

#: Julia element type name -> numpy dtype string (little-endian).
JULIA_ELTYPES: dict[str, str] = {
    "Bool": "|b1",
    "Int8": "|i1",
    "Int16": "<i2",
    "Int32": "<i4",
    "Int64": "<i8",
    "UInt8": "|u1",
    "UInt16": "<u2",
    "UInt32": "<u4",
    "UInt64": "<u8",
    "Float16": "<f2",
    "Float32": "<f4",
    "Float64": "<f8",
    "ComplexF32": "<c8",
    "ComplexF64": "<c16",
}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

#: The integer types a Julia ``Rational{T}`` may have on the wire.
RATIONAL_INTTYPES = (
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Int128",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "UInt128",
    "BigInt",
)


def _fraction_inttype(value: Fraction) -> str:
    fits = all(_INT64_MIN <= v <= _INT64_MAX for v in (value.numerator, value.denominator))
    return "Int64" if fits else "BigInt"


def _np() -> Any:
    import numpy

    return numpy


def _julia_eltype(dtype: Any) -> str:
    """The Julia element type name for a numpy dtype, or raise ConversionError."""
    np = _np()
    for name, code in JULIA_ELTYPES.items():
        if np.dtype(code) == dtype.newbyteorder("<") or np.dtype(code) == dtype:
            return name
    raise ConversionError(
        f"numpy arrays of dtype {dtype} cannot be sent to Julia; supported dtypes: "
        + ", ".join(sorted({str(_np().dtype(c)) for c in JULIA_ELTYPES.values()}))
        + " (convert with .astype(...) or send a list)"
    )


def encode(value: Any) -> Tagged:
    """Turn a Python value into a tagged tree for Julia (see the module table)."""
    if value is None:
        return ("nothing",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, JuliaBlob):
        return ("blob", value.jltype, value.data)
    np = _np() if _numpy_loaded() else None
    if (
        np is not None
        and isinstance(value, np.generic)
        and not isinstance(value, (np.str_, np.bytes_))
    ):
        arr = np.asarray(value)
        name = _julia_eltype(arr.dtype)
        return ("num", name, arr.astype(JULIA_ELTYPES[name]).tobytes())
    if isinstance(value, JuliaBigInt):
        return ("bigint", str(int(value)))
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return ("int", int(value))
        return ("bigint", str(int(value)))
    if isinstance(value, float):
        return ("float", float(value))
    if isinstance(value, complex):
        return ("complex", value.real, value.imag)
    if isinstance(value, Fraction):
        inttype = value.inttype if isinstance(value, JuliaRational) else _fraction_inttype(value)
        return ("rational", inttype, str(value.numerator), str(value.denominator))
    if isinstance(value, JuliaSymbol):
        return ("symbol", str(value))
    if isinstance(value, JuliaChar):
        return ("char", str(value))
    if isinstance(value, str):
        return ("str", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return ("array", "UInt8", (len(data),), data)
    if isinstance(value, JuliaPair):
        return ("pair", encode(value[0]), encode(value[1]))
    if isinstance(value, tuple):
        return ("tuple", [encode(v) for v in value])
    if isinstance(value, list):
        return ("list", [encode(v) for v in value])
    if isinstance(value, JuliaNamedTuple):
        return ("namedtuple", encode_kwargs(value))
    if isinstance(value, dict):
        return ("dict", [(encode(k), encode(v)) for k, v in value.items()])
    if isinstance(value, (set, frozenset)):
        return ("set", [encode(v) for v in value])
    if np is not None and isinstance(value, np.ndarray):
        if value.dtype == object:
            return (
                ("list", [encode(v) for v in value.tolist()])
                if value.ndim == 1
                else _unsupported(value)
            )
        name = _julia_eltype(value.dtype)
        data = np.asarray(value, dtype=JULIA_ELTYPES[name]).tobytes(order="F")
        return ("array", name, tuple(int(n) for n in value.shape), data)
    return _unsupported(value)


def _unsupported(value: Any) -> Tagged:
    raise ConversionError(
        f"cannot send a {type(value).__module__}.{type(value).__qualname__} to Julia: "
        "supported are None, bool, int, float, complex, Fraction, str, bytes, tuple, list, "
        "dict, set, numpy arrays and scalars, and JuliaBlob; convert the value first"
    )


def _numpy_loaded() -> bool:
    # numpy is a dependency of dask's array stack but not of pydispatch itself:
    # only treat values as numpy values when numpy is importable.
    try:
        import numpy  # noqa: F401
    except ImportError:  # pragma: no cover - numpy is installed with dask[distributed]
        return False
    return True


def encode_kwargs(kwargs: dict[str, Any]) -> TaggedKwargs:
    """Keyword arguments for a Julia call (and a NamedTuple's fields):
    ``[name, tagged value]`` entries.

    Lists, never 2-tuples: the Julia side (`jltree`) reads a 2-tuple whose first
    item is ``"pyobject"`` as a Python object, and a name may be that.
    """
    return [[str(k), encode(v)] for k, v in kwargs.items()]


def decode(tree: Any) -> Any:
    """Turn a tagged tree from Julia back into a Python value (see the module table)."""
    if not isinstance(tree, tuple) or not tree or not isinstance(tree[0], str):
        raise ConversionError(f"not a tagged value from Julia: {tree!r:.200}")
    tag = tree[0]
    if tag == "nothing":
        return None
    if tag in ("bool", "int", "float", "str"):
        return tree[1]
    if tag == "symbol":
        return JuliaSymbol(tree[1])
    if tag == "char":
        return JuliaChar(tree[1])
    if tag == "bigint":
        value = int(tree[1])
        # Beyond Int64 a plain int goes back as a BigInt anyway; within it, only
        # JuliaBigInt does.
        return JuliaBigInt(value) if _INT64_MIN <= value <= _INT64_MAX else value
    if tag == "complex":
        return complex(tree[1], tree[2])
    if tag == "rational":
        _, inttype, num, den = tree
        if inttype not in RATIONAL_INTTYPES:
            raise ConversionError(f"unsupported Rational integer type {inttype!r} from Julia")
        plain = Fraction(int(num), int(den))
        if _fraction_inttype(plain) == inttype:
            return plain
        return JuliaRational(int(num), int(den), inttype)
    if tag == "num":
        np = _np()
        return np.frombuffer(tree[2], dtype=JULIA_ELTYPES[tree[1]])[0]
    if tag == "tuple":
        return tuple(decode(v) for v in tree[1])
    if tag == "pair":
        return JuliaPair(decode(tree[1]), decode(tree[2]))
    if tag == "namedtuple":
        return JuliaNamedTuple((str(k), decode(v)) for k, v in tree[1])
    if tag == "list":
        return [decode(v) for v in tree[1]]
    if tag == "dict":
        return {decode(k): decode(v) for k, v in tree[1]}
    if tag == "set":
        return {decode(v) for v in tree[1]}
    if tag == "array":
        np = _np()
        _, eltype, shape, data = tree
        flat = np.frombuffer(data, dtype=JULIA_ELTYPES[eltype])
        # A copy, in Fortran order so indices match Julia's; it owns its memory.
        return flat.reshape(tuple(shape), order="F").copy(order="F")
    if tag == "blob":
        return JuliaBlob(tree[2], tree[1])
    if tag == "pyobject":  # a Python object a Julia client holds (``Py``), passed back
        return tree[1]
    if tag == "error":
        raise ConversionError("a Julia error is not a value; use decode_result")
    raise ConversionError(
        f"unknown tag {tag!r} from Julia (DispatchBridge and pydispatch versions differ?)"
    )


def decode_result(tree: Any) -> Any:
    """Decode a call's result; a tagged ``error`` raises :class:`JuliaTaskError`."""
    if isinstance(tree, tuple) and tree and tree[0] == "error":
        _, jltype, message, backtrace, payload = tree
        raise JuliaTaskError(str(jltype), str(message), str(backtrace), payload)
    return decode(tree)
