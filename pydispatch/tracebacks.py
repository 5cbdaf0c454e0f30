"""Tracebacks a user can read: the user's frames, without pydispatch's own.

Every traceback pydispatch shows (the `pydispatch run` report, its JSON,
`DependencyError.trace`) goes through `user_frames`, which drops the frames
of pydispatch's own code: task wrappers on the workers, executors, the
command line. A frame is pydispatch's when its file lies in this package's
directory, or when its module is `pydispatch` or a submodule (for tracebacks
from workers on other machines, where pydispatch's path differs). Both hold
wherever a module sits inside the package.
"""

from __future__ import annotations

import functools
import os
import traceback
from types import TracebackType
from typing import Any

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
"""pydispatch's own directory: frames of files under it are pydispatch's, not the user's."""
_REAL_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__)) + os.sep


@functools.lru_cache(maxsize=1024)
def _in_package(filename: str) -> bool:
    if filename.startswith(PACKAGE_DIR):
        return True
    if not filename or filename.startswith("<"):
        return False
    return os.path.realpath(filename).startswith(_REAL_PACKAGE_DIR)


def is_own_frame(filename: str, module: object = None) -> bool:
    """Whether a frame of `filename` (in module `module`, when known) is pydispatch's own code.

    Python's frozen import code counts too: it is never the user's.
    """
    if isinstance(module, str) and (module == "pydispatch" or module.startswith("pydispatch.")):
        return True
    return filename.startswith("<frozen") or _in_package(filename)


def user_frames(tb: TracebackType | Any | None, *, remote: bool = False) -> traceback.StackSummary:
    """The frames of traceback `tb` for a user: the one filter of pydispatch's own frames.

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
    kept = [f for f, m in zip(frames, modules, strict=True) if not is_own_frame(f.filename, m)]
    if remote:
        frames = traceback.StackSummary.from_list(
            [traceback.FrameSummary(f.filename, f.lineno, f.name) for f in frames]
        )
        kept = [traceback.FrameSummary(f.filename, f.lineno, f.name) for f in kept]
    return traceback.StackSummary.from_list(kept) if kept else frames


def format_user_frames(tb: TracebackType | Any | None, *, remote: bool = False) -> str:
    """The traceback text of `tb` (frames only) without pydispatch's own frames."""
    return "".join(user_frames(tb, remote=remote).format())


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
