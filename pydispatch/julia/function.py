"""JuliaFunction: a picklable Python callable that runs a Julia function.

A JuliaFunction is only a *reference*: a qualified name (plus the package that
defines it), or Julia ``Serialization`` bytes (plus the packages to load before
deserializing). Calling it hands the call to this process's Julia owner thread
(:mod:`pydispatch.julia.runtime`) and blocks until the result is back, so an
``Op(JuliaFunction(...), ...)`` runs under any pydispatch executor.
"""

from __future__ import annotations

import hashlib
import re
import uuid as _uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = ["JuliaFunction", "JuliaPackage"]


class JuliaPackage(NamedTuple):
    """A Julia package identity: its UUID and name (a ``Base.PkgId``)."""

    uuid: str
    name: str

    @classmethod
    def of(cls, value: JuliaPackage | tuple[str, str]) -> JuliaPackage:
        """Validate and normalise a ``(uuid, name)`` pair."""
        if not isinstance(value, tuple) or len(value) != 2:
            raise TypeError(f"a Julia package is a (uuid, name) pair, not {value!r}")
        uuid, name = value
        try:
            text = str(_uuid.UUID(str(uuid)))
        except ValueError:
            raise ValueError(f"Julia package {name!r}: {uuid!r} is not a UUID") from None
        if not isinstance(name, str) or not _IDENT.fullmatch(name):
            raise ValueError(f"Julia package name {name!r} is not a Julia identifier")
        return cls(text, name)


# Julia identifiers are broad (Unicode, `!`); reject only what is clearly not a name part.
_IDENT = re.compile(r"[^\s.()\[\],;\"'`]+")


class JuliaFunction:
    """A Julia function as a picklable Python callable.

    ``JuliaFunction("Base.max")`` refers to a function by its qualified name;
    ``JuliaFunction("Stats.mean", package=(uuid, "Stats"))`` resolves it inside a
    package (loaded with ``Base.require`` on the worker). Closures and functions
    defined in ``Main`` travel as bytes: :meth:`from_serialized`. With
    ``nogil=True`` (the default) the function runs with Python's GIL released, so
    the worker keeps heartbeating; it must then not touch Python (give
    ``nogil=False`` for a function that does; see the README, "Julia").

    ``main_names`` are the names in Julia's ``Main`` the function needs on a
    worker (DispatchBridge fills them in); a graph is checked against them before
    it is submitted (:func:`pydispatch.julia.everywhere.check_available`). They
    are not part of the function's identity.
    """

    __slots__ = ("_digest", "data", "kind", "main_names", "name", "nogil", "package", "packages")

    kind: str
    name: str
    package: JuliaPackage | None
    data: bytes | None
    packages: tuple[JuliaPackage, ...]
    nogil: bool
    main_names: tuple[str, ...]
    _digest: str

    def __init__(
        self,
        name: str,
        *,
        package: JuliaPackage | tuple[str, str] | None = None,
        nogil: bool = True,
        main_names: Iterable[str] = (),
    ) -> None:
        parts = name.split(".") if isinstance(name, str) else []
        if len(parts) < 2 or not all(parts):
            raise ValueError(
                f"JuliaFunction needs a qualified name like 'Base.max' or 'MyPkg.f', got {name!r}"
            )
        pkg = JuliaPackage.of(package) if package is not None else None
        if pkg is not None and parts[0] != pkg.name:
            raise ValueError(f"{name!r} does not start with its package name {pkg.name!r}")
        self._init("ref", name, pkg, None, (pkg,) if pkg else (), nogil)
        self.main_names = _names(main_names)

    @classmethod
    def from_serialized(
        cls,
        data: bytes,
        *,
        name: str = "anonymous",
        packages: Iterable[JuliaPackage | tuple[str, str]] = (),
        nogil: bool = True,
        main_names: Iterable[str] = (),
    ) -> JuliaFunction:
        """A function serialized by Julia (``Serialization.serialize``).

        ``packages`` are loaded on the worker before deserializing; ``name`` is
        only a label (the node's default label and the dask key prefix).
        """
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise TypeError("from_serialized needs the non-empty bytes Julia serialized")
        self = cls.__new__(cls)
        pkgs = tuple(JuliaPackage.of(p) for p in packages)
        self._init("serialized", str(name), None, bytes(data), pkgs, nogil)
        self.main_names = _names(main_names)
        return self

    def _init(
        self,
        kind: str,
        name: str,
        package: JuliaPackage | None,
        data: bytes | None,
        packages: tuple[JuliaPackage, ...],
        nogil: bool,
    ) -> None:
        self.kind = kind
        self.name = name
        self.package = package
        self.data = data
        self.packages = packages
        self.nogil = bool(nogil)
        h = hashlib.sha256()
        for part in (kind, name, repr(package), repr(packages), repr(self.nogil)):
            h.update(part.encode())
            h.update(b"\0")
        if data is not None:
            h.update(data)
        self._digest = h.hexdigest()

    # -- identity ---------------------------------------------------------
    @property
    def digest(self) -> str:
        """A content hash: equal for equal references or equal bytes."""
        return self._digest

    @property
    def __name__(self) -> str:
        """The short name (``max`` for ``Base.max``), used for labels and key prefixes."""
        return self.name.rsplit(".", 1)[-1] if self.kind == "ref" else self.name

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("pydispatch.julia.JuliaFunction", self._digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JuliaFunction):
            return NotImplemented
        return self._digest == other._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        if self.kind == "ref":
            return f"JuliaFunction({self.name!r})"
        return f"JuliaFunction.from_serialized(<{len(self.data or b'')} bytes>, name={self.name!r})"

    # -- pickling: plain data only ----------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _restore,
            (
                self.kind,
                self.name,
                self.package,
                self.data,
                self.packages,
                self.nogil,
                self.main_names,
            ),
        )

    # -- the wire spec the Julia side reads --------------------------------
    def spec(self) -> tuple[Any, ...]:
        """The tuple ``DispatchBridge.invoke_task`` reads (see ``src/functions.jl``).

        ``("ref", qualname, uuid_or_empty, nogil)`` or
        ``("serialized", digest, data, [(uuid, name), ...], nogil)``.
        """
        if self.kind == "ref":
            uuid = self.package.uuid if self.package else ""
            return ("ref", self.name, uuid, self.nogil)
        return (
            "serialized",
            self._digest,
            self.data,
            [tuple(p) for p in self.packages],
            self.nogil,
        )

    @classmethod
    def from_spec(
        cls,
        spec: tuple[Any, ...] | list[Any],
        label: str | None = None,
        main_names: Iterable[str] = (),
    ) -> JuliaFunction:
        """Rebuild a JuliaFunction from the tuple ``DispatchBridge.funcspec`` makes."""
        kind = spec[0]
        if kind == "ref":
            _, name, uuid, nogil = spec
            pkg = (str(uuid), str(name).split(".")[0]) if uuid else None
            return cls(str(name), package=pkg, nogil=bool(nogil), main_names=main_names)
        if kind == "serialized":
            _, _digest, data, packages, nogil = spec
            return cls.from_serialized(
                bytes(data),
                name=label or "anonymous",
                packages=[(str(u), str(n)) for u, n in packages],
                nogil=bool(nogil),
                main_names=main_names,
            )
        raise ValueError(f"unknown Julia function spec kind {kind!r}")

    # -- calling -------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function on this process's Julia owner thread; return its result."""
        from .runtime import get_runtime

        return get_runtime().call(self, args, kwargs)


def _restore(
    kind: str,
    name: str,
    package: tuple[str, str] | None,
    data: bytes | None,
    packages: tuple[tuple[str, str], ...],
    nogil: bool,
    main_names: tuple[str, ...] = (),
) -> JuliaFunction:
    if kind == "ref":
        return JuliaFunction(name, package=package, nogil=nogil, main_names=main_names)
    assert data is not None
    return JuliaFunction.from_serialized(
        data, name=name, packages=packages, nogil=nogil, main_names=main_names
    )


def _names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError("main_names is an iterable of names, not one str")
    return tuple(sorted({str(n) for n in names}))
