"""Plain-Python values that stand for Julia things outside the Julia owner thread.

Nothing here imports juliacall: these objects are pickled into dask graphs and
results, and the scheduler (which has no Julia) must be able to unpickle them.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["ConversionError", "JuliaBlob", "JuliaRuntimeError", "JuliaTaskError"]


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


class JuliaTaskError(Exception):
    """A Julia exception raised by a Julia function, as a plain Python exception.

    ``jltype`` is the Julia exception type (e.g. ``"DomainError"``), ``message``
    is ``sprint(showerror, e)``, ``backtrace`` the Julia backtrace as text, and
    ``payload`` the exception serialized with Julia's ``Serialization`` (or
    ``None``), so a Julia client can rebuild the original exception.
    """

    def __init__(
        self,
        jltype: str,
        message: str,
        backtrace: str = "",
        payload: bytes | None = None,
    ) -> None:
        super().__init__(jltype, message, backtrace, payload)
        self.jltype = jltype
        self.message = message
        self.backtrace = backtrace
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (JuliaTaskError, (self.jltype, self.message, self.backtrace, self.payload))

    def __str__(self) -> str:
        text = f"Julia {self.jltype}: {self.message}"
        if self.backtrace:
            text += f"\nJulia backtrace:\n{self.backtrace}"
        return text

    def __repr__(self) -> str:
        return f"JuliaTaskError({self.jltype!r}, {self.message!r})"


class JuliaRuntimeError(RuntimeError):
    """The process's Julia runtime is not usable (failed to start, or shut down)."""


class ConversionError(TypeError):
    """A value cannot cross between Python and Julia under the conversion table."""
