"""JuliaFunction, JuliaBlob, JuliaTaskError: picklable, hashable, Julia-free."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cloudpickle
import pytest
from dask.base import tokenize

from pydispatch.julia import JuliaBlob, JuliaFunction, JuliaPackage, JuliaTaskError
from tests.julia_helpers import REPO

UUID = "a48d5fe2-965b-541b-8ad8-ab19b69f3f25"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _unpickled_without_juliacall(objs: list[object], *prints: str) -> list[str]:
    """Unpickle `objs` in a fresh Python where juliacall cannot be imported; the lines
    that printing each expression of `prints` (over `objs`) gives there."""
    data = pickle.dumps(objs).hex()
    proc = _run(
        "import pickle, sys\n"
        "sys.modules['juliacall'] = None  # importing juliacall now raises\n"
        f"objs = pickle.loads(bytes.fromhex('{data}'))\n"
        + "".join(f"print({expression})\n" for expression in prints)
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_importing_pydispatch_julia_does_not_import_juliacall() -> None:
    proc = _run(
        "import sys; import pydispatch, pydispatch.julia, pydispatch.julia.hostapi\n"
        "assert 'juliacall' not in sys.modules, 'juliacall imported'\n"
        "assert 'juliapkg' not in sys.modules, 'juliapkg imported'\n"
        "print('ok')"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_pickles_unpickle_where_juliacall_cannot_be_imported() -> None:
    objs = [
        JuliaFunction("Base.max"),
        JuliaFunction("Dispatcher.Op", package=(UUID, "Dispatcher")),
        JuliaFunction.from_serialized(
            b"\x37JL\x00data", name="#3", packages=[(UUID, "Dispatcher")]
        ),
        JuliaBlob(b"\x00\x01", "MyStruct"),
        JuliaTaskError("DomainError", "sqrt of -1", "bt line", b"payload"),
    ]
    lines = _unpickled_without_juliacall(
        objs,
        "[type(o).__name__ for o in objs]",
        "objs[0].name, objs[2].packages[0].name, objs[3].jltype, objs[4].message",
    )
    assert lines[0] == str(
        ["JuliaFunction", "JuliaFunction", "JuliaFunction", "JuliaBlob", "JuliaTaskError"]
    )
    assert lines[1] == "Base.max Dispatcher MyStruct sqrt of -1"


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_round_trips_keep_equality_and_fields(dumps: object) -> None:
    f = JuliaFunction.from_serialized(b"abc", name="#5", packages=[(UUID, "Dispatcher")])
    g = pickle.loads(dumps(f))  # type: ignore[operator]
    assert g == f and g.digest == f.digest and g.name == "#5" and g.data == b"abc"
    err = pickle.loads(dumps(JuliaTaskError("KeyError", "key :a not found", "bt", None)))  # type: ignore[operator]
    assert isinstance(err, JuliaTaskError)
    assert (err.jltype, err.message, err.backtrace, err.payload) == (
        "KeyError",
        "key :a not found",
        "bt",
        None,
    )
    assert str(err) == "Julia KeyError: key :a not found"


def test_a_julia_task_error_prints_on_one_line() -> None:
    # The backtrace is reported once, by whoever shows the error (pydispatch run
    # prints the remote trace itself); str() stays one line.
    err = JuliaTaskError("MethodError", "MethodError: no method\nClosest candidates:", "bt1\nbt2")
    assert str(err) == "Julia MethodError: MethodError: no method"
    assert err.backtrace == "bt1\nbt2"
    assert str(JuliaTaskError("InterruptException", "")) == "Julia InterruptException"


def test_tokens_are_content_hashes_stable_across_processes() -> None:
    a, b = JuliaFunction("Base.max"), JuliaFunction("Base.max")
    assert tokenize(a) == tokenize(b)
    assert tokenize(a) != tokenize(JuliaFunction("Base.min"))
    assert tokenize(a) != tokenize(JuliaFunction("Base.max", nogil=False))
    s1 = JuliaFunction.from_serialized(b"one")
    assert tokenize(s1) != tokenize(JuliaFunction.from_serialized(b"two"))
    proc = _run(
        "from dask.base import tokenize; from pydispatch.julia import JuliaFunction\n"
        "print(tokenize(JuliaFunction('Base.max')))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == tokenize(a)


def test_names_and_labels() -> None:
    assert JuliaFunction("Base.max").__name__ == "max"
    assert JuliaFunction("Base.Math.sin").__name__ == "sin"
    assert JuliaFunction.from_serialized(b"x", name="#3").__name__ == "#3"
    assert repr(JuliaFunction("Base.max")) == "JuliaFunction('Base.max')"


def test_pydispatch_op_accepts_a_julia_function_and_labels_it() -> None:
    from pydispatch import Op, get_key

    node = Op(JuliaFunction("Base.max"), 3, 4)
    assert node.label == "max"
    assert get_key(node) == get_key(Op(JuliaFunction("Base.max"), 3, 4))
    assert get_key(node) != get_key(Op(JuliaFunction("Base.min"), 3, 4))
    assert get_key(node).startswith("max")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("max",), "qualified name"),
        (("Base..max",), "qualified name"),
        (("Foo.f",), "does not start with its package name"),
    ],
)
def test_bad_references_say_what_is_wrong(args: tuple[str], message: str) -> None:
    kwargs = {"package": (UUID, "Dispatcher")} if args[0] == "Foo.f" else {}
    with pytest.raises(ValueError, match=message):
        JuliaFunction(*args, **kwargs)  # type: ignore[arg-type]


def test_package_identity_is_validated() -> None:
    assert JuliaPackage.of((UUID.upper(), "Dispatcher")) == JuliaPackage(UUID, "Dispatcher")
    with pytest.raises(ValueError, match="not a UUID"):
        JuliaPackage.of(("nope", "Dispatcher"))
    with pytest.raises(TypeError, match="non-empty bytes"):
        JuliaFunction.from_serialized(b"")


def test_spec_round_trip() -> None:
    for f in [
        JuliaFunction("Base.max"),
        JuliaFunction("Dispatcher.Op", package=(UUID, "Dispatcher"), nogil=False),
        JuliaFunction.from_serialized(b"bytes", name="#1", packages=[(UUID, "Dispatcher")]),
    ]:
        assert JuliaFunction.from_spec(f.spec(), f.name) == f


def test_blob_is_opaque_data() -> None:
    blob = JuliaBlob(bytearray(b"xyz"), "Point{Float64}")
    assert blob.data == b"xyz" and isinstance(blob.data, bytes)
    assert pickle.loads(pickle.dumps(blob)) == blob
    assert tokenize(blob) == tokenize(JuliaBlob(b"xyz", "Point{Float64}"))
    with pytest.raises(TypeError, match="bytes"):
        JuliaBlob("text", "String")  # type: ignore[arg-type]


def test_julia_typed_values_and_everywhere_code_unpickle_without_juliacall() -> None:
    from pydispatch.julia import (
        JuliaBigInt,
        JuliaChar,
        JuliaNamedTuple,
        JuliaPair,
        JuliaRational,
        JuliaSymbol,
        UnavailableFunctionError,
    )
    from pydispatch.julia.everywhere import EverywherePlugin, JuliaCode

    objs = [
        JuliaSymbol("fast"),
        JuliaChar("c"),
        JuliaBigInt(3),
        JuliaRational(1, 3, "Int32"),
        JuliaNamedTuple(a=1),
        JuliaPair(1, "x"),
        EverywherePlugin([JuliaCode(b"expr", ["f"], origin="o")], "session"),
        UnavailableFunctionError("no f", {"n": ("f",)}),
    ]
    lines = _unpickled_without_juliacall(
        objs,
        "[repr(o) for o in objs[:6]]",
        "objs[6].blocks[0].names, objs[6].name, objs[7].missing",
    )
    assert lines[0] == str([repr(o) for o in objs[:6]])
    assert lines[1] == "('f',) session {'n': ('f',)}"


def test_julia_typed_values_have_their_own_stable_tokens() -> None:
    # Content keys: Op(f, :a) and Op(f, "a") are different computations in Julia.
    from fractions import Fraction

    from pydispatch.julia import (
        JuliaBigInt,
        JuliaChar,
        JuliaNamedTuple,
        JuliaPair,
        JuliaRational,
        JuliaSymbol,
    )

    pairs = [
        (JuliaSymbol("a"), "a"),
        (JuliaChar("a"), "a"),
        (JuliaBigInt(3), 3),
        (JuliaRational(1, 2, "Int32"), Fraction(1, 2)),
        (JuliaNamedTuple(a=1), {"a": 1}),
        (JuliaPair(1, 2), (1, 2)),
    ]
    for typed, plain in pairs:
        assert tokenize(typed) != tokenize(plain)
        assert tokenize(typed) == tokenize(pickle.loads(pickle.dumps(typed)))
    assert tokenize(JuliaNamedTuple(a=1, b=2)) != tokenize(JuliaNamedTuple(b=2, a=1))
    assert tokenize(JuliaSymbol("a")) != tokenize(JuliaChar("a"))
    proc = _run(
        "from dask.base import tokenize; from pydispatch.julia import JuliaNamedTuple\n"
        "print(tokenize(JuliaNamedTuple(a=1)))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == tokenize(JuliaNamedTuple(a=1))
