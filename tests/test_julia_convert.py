"""The Python half of the conversion table (tagged trees both ways)."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest

from pydispatch.julia import (
    JULIA_ELTYPES,
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
from pydispatch.julia.convert import decode, decode_result, encode, encode_kwargs


@pytest.mark.parametrize(
    ("value", "tagged"),
    [
        (None, ("nothing",)),
        (True, ("bool", True)),
        (3, ("int", 3)),
        (2**63 - 1, ("int", 2**63 - 1)),
        (2**63, ("bigint", str(2**63))),
        (-(2**70), ("bigint", str(-(2**70)))),
        (1.5, ("float", 1.5)),
        (1 + 2j, ("complex", 1.0, 2.0)),
        ("héllo", ("str", "héllo")),
        (Fraction(3, 4), ("rational", "Int64", "3", "4")),
        ((1, "a"), ("tuple", [("int", 1), ("str", "a")])),
        ([None, 2.0], ("list", [("nothing",), ("float", 2.0)])),
        ({"k": 1}, ("dict", [(("str", "k"), ("int", 1))])),
        (b"ab", ("array", "UInt8", (2,), b"ab")),
    ],
)
def test_encode_follows_the_table(value: object, tagged: tuple[object, ...]) -> None:
    assert encode(value) == tagged


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        7,
        2**80,
        2.5,
        3j,
        "x",
        Fraction(2**70, 3),
        (1, (2, [3])),
        {"a": [1, {"b": None}]},
    ],
)
def test_round_trip_of_plain_values(value: object) -> None:
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


def test_bool_is_not_an_int() -> None:
    assert encode(False) == ("bool", False)
    assert encode([True, 1]) == ("list", [("bool", True), ("int", 1)])


@pytest.mark.parametrize("name", sorted(JULIA_ELTYPES))
def test_arrays_cross_column_major_as_copies(name: str) -> None:
    dtype = np.dtype(JULIA_ELTYPES[name])
    a = (np.arange(6) % 2 if name == "Bool" else np.arange(6)).astype(dtype).reshape(2, 3)
    tag, eltype, shape, data = encode(a)
    assert (tag, eltype, shape) == ("array", name, (2, 3))
    # Julia's memory order: column-major, so element [1, 0] comes second.
    assert np.frombuffer(data, dtype=dtype)[1] == a[1, 0]
    back = decode(encode(a))
    assert back.dtype == dtype and back.shape == (2, 3) and np.array_equal(back, a)
    assert back.flags.owndata and back.flags.writeable
    back[0, 0] = back[1, 1]  # a copy: the original is untouched
    assert np.array_equal(
        a, (np.arange(6) % 2 if name == "Bool" else np.arange(6)).astype(dtype).reshape(2, 3)
    )


def test_non_contiguous_and_big_endian_arrays() -> None:
    a = np.arange(12, dtype=">i4").reshape(3, 4)[:, ::2]
    tag, eltype, shape, _ = encode(a)
    assert (tag, eltype, shape) == ("array", "Int32", (3, 2))
    assert np.array_equal(decode(encode(a)), a)


def test_numpy_scalars_keep_their_type() -> None:
    tagged = encode(np.float32(1.25))
    assert tagged[:2] == ("num", "Float32")
    back = decode(tagged)
    assert back == np.float32(1.25) and back.dtype == np.float32
    assert encode(np.int64(5))[:2] == ("num", "Int64")


def test_blobs_pass_through() -> None:
    blob = JuliaBlob(b"\x01\x02", "Main.Point")
    assert encode(blob) == ("blob", "Main.Point", b"\x01\x02")
    assert decode(encode(blob)) == blob


@pytest.mark.parametrize(
    "value", [object(), np.array(["a"]), {1: object()}, np.zeros((2, 2), dtype=object)]
)
def test_unsupported_values_fail_with_what_to_do(value: object) -> None:
    with pytest.raises(ConversionError, match=r"to Julia|dtype"):
        encode(value)


def test_sets_and_julia_only_tags() -> None:
    assert decode(encode({1, 2})) == {1, 2}
    assert decode(("str", "sym")) == "sym"
    with pytest.raises(ConversionError, match="unknown tag"):
        decode(("symbolic", "x"))
    with pytest.raises(ConversionError, match="not a tagged value"):
        decode([1])


def test_decode_result_raises_julia_errors() -> None:
    with pytest.raises(JuliaTaskError) as info:
        decode_result(("error", "DomainError", "sqrt(-1)", "bt", None))
    assert (info.value.jltype, info.value.message, info.value.backtrace) == (
        "DomainError",
        "sqrt(-1)",
        "bt",
    )
    assert decode_result(("int", 4)) == 4


# -- Julia values come back to Julia with their Julia type ---------------------------
@pytest.mark.parametrize(
    ("tagged", "cls", "plain"),
    [
        (("symbol", "fast"), JuliaSymbol, "fast"),
        (("char", "é"), JuliaChar, "é"),
        (("bigint", "5"), JuliaBigInt, 5),  # a small BigInt is still a BigInt
        (("rational", "Int32", "1", "3"), JuliaRational, Fraction(1, 3)),
        (("rational", "BigInt", "1", "3"), JuliaRational, Fraction(1, 3)),
        (("pair", ("int", 1), ("str", "a")), JuliaPair, (1, "a")),
        (
            ("namedtuple", [["b", ("int", 2)], ["a", ("float", 1.0)]]),
            JuliaNamedTuple,
            {"b": 2, "a": 1.0},
        ),
    ],
)
def test_julia_only_types_round_trip_exactly(tagged: tuple, cls: type, plain: object) -> None:
    value = decode(tagged)
    assert isinstance(value, cls) and value == plain  # usable as the plain Python value
    assert encode(value) == tagged  # and goes back to Julia as the same Julia type
    assert encode(pickle.loads(pickle.dumps(value))) == tagged  # through dask, too


def test_plain_python_values_keep_their_plain_julia_types() -> None:
    assert encode("fast") == ("str", "fast")
    assert encode(5) == ("int", 5)
    assert encode(Fraction(1, 3)) == ("rational", "Int64", "1", "3")
    assert decode(("rational", "Int64", "1", "3")).__class__ is Fraction
    assert decode(("bigint", str(2**70))).__class__ is int  # beyond Int64 an int is exact
    assert encode((1, "a")) == ("tuple", [("int", 1), ("str", "a")])
    assert list(decode(encode(JuliaNamedTuple(b=2, a=1)))) == ["b", "a"]  # field order


def test_unknown_rational_integer_types_are_refused() -> None:
    with pytest.raises(ConversionError, match="Rational integer type"):
        decode(("rational", "Float64", "1", "2"))


def test_julia_typed_values_survive_copies() -> None:
    import copy

    for value in (
        JuliaRational(1, 2, "Int32"),
        JuliaPair(1, [2]),
        JuliaNamedTuple(a=[1]),
        JuliaSymbol("a"),
        JuliaChar("c"),
        JuliaBigInt(5),
    ):
        for twin in (copy.copy(value), copy.deepcopy(value)):
            assert type(twin) is type(value) and encode(twin) == encode(value)


def _pyobject_payloads(tree: object) -> list[object]:
    """Every 2-tuple the Julia side (`jltree`) would read as a Python object."""
    if isinstance(tree, tuple) and len(tree) == 2 and tree[0] == "pyobject":
        return [tree[1]]
    if isinstance(tree, (tuple, list)):
        return [found for item in tree for found in _pyobject_payloads(item)]
    return []


def test_a_field_or_keyword_named_pyobject_is_not_read_as_a_python_object() -> None:
    value = JuliaNamedTuple({"pyobject": 1, "b": "x"})
    tree = encode(value)
    assert _pyobject_payloads(tree) == []
    assert decode(tree) == value and isinstance(decode(tree), JuliaNamedTuple)
    assert encode_kwargs({"pyobject": 2.5}) == [["pyobject", ("float", 2.5)]]
    assert _pyobject_payloads(encode_kwargs({"pyobject": 2.5})) == []
