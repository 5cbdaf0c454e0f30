"""Tracebacks as a user reads them: the user's frames, without pydispatch's own.

Every traceback pydispatch shows (the `pydispatch run` report, its JSON,
`DependencyError.trace`) goes through `user_frames`, which drops the frames
of pydispatch's own code: task wrappers on the workers, executors, the
command line. A frame is pydispatch's when its module is `pydispatch` or a
submodule (for tracebacks from other machines, where paths differ), or when
its file lies in this package's directory. Both hold wherever a module sits
inside the package.
"""

from __future__ import annotations

import functools
import os
import traceback
from types import TracebackType
from typing import Any

__all__ = ["format_user_exception", "user_frames"]

_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


@functools.lru_cache(maxsize=1024)
def _in_package(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    return os.path.realpath(filename).startswith(_PACKAGE_DIR + os.sep)


def _is_own(module: Any, filename: str) -> bool:
    if isinstance(module, str) and (module == "pydispatch" or module.startswith("pydispatch.")):
        return True
    return _in_package(filename)


def user_frames(tb: TracebackType | Any | None, *, remote: bool = False) -> traceback.StackSummary:
    """The frames of traceback `tb` for a user.

    pydispatch's own frames are left out, unless every frame is pydispatch's
    (then the error is pydispatch's own, and all of them are kept). `remote`:
    `tb` was rebuilt from another process (as dask does); its column positions
    are not real, so no carets are drawn under the source lines.
    """
    if tb is None:
        return traceback.StackSummary()
    frames = traceback.extract_tb(tb)
    modules = []
    entry = tb
    while entry is not None:
        modules.append(getattr(entry.tb_frame, "f_globals", {}).get("__name__"))
        entry = entry.tb_next
    if len(modules) != len(frames):  # a limit (sys.tracebacklimit) cut the summary
        modules = [None] * len(frames)
    kept = [f for f, m in zip(frames, modules, strict=True) if not _is_own(m, f.filename)]
    if remote:
        frames = traceback.StackSummary.from_list(
            [traceback.FrameSummary(f.filename, f.lineno, f.name) for f in frames]
        )
        kept = [traceback.FrameSummary(f.filename, f.lineno, f.name) for f in kept]
    return traceback.StackSummary.from_list(kept) if kept else frames


def format_user_exception(err: BaseException) -> str:
    """`err`'s traceback text, as `traceback.format_exception` gives it, with `user_frames`.

    Chained exceptions (`__cause__`, `__context__`) are filtered the same way.
    """
    shown = traceback.TracebackException(type(err), err, err.__traceback__)
    pending: list[tuple[Any, BaseException | None]] = [(shown, err)]
    seen: set[int] = set()
    while pending:
        summary, exc = pending.pop()
        if summary is None or exc is None or id(summary) in seen:
            continue
        seen.add(id(summary))
        summary.stack = user_frames(exc.__traceback__)
        pending.append((summary.__cause__, exc.__cause__))
        pending.append((summary.__context__, exc.__context__))
    return "".join(shown.format())
