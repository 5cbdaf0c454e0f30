"""Tracebacks a user can read: the user's frames, without pydispatch's own."""

from __future__ import annotations

import os
import traceback
from types import TracebackType

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
"""pydispatch's own directory: frames of files under it are pydispatch's, not the user's."""


def is_own_frame(filename: str) -> bool:
    """Whether a frame of `filename` is pydispatch's own code (or Python's frozen import code)."""
    return filename.startswith(PACKAGE_DIR) or filename.startswith("<frozen")


def format_user_frames(tb: TracebackType | None) -> str:
    """The traceback text of `tb` without pydispatch's own frames."""
    if tb is None:
        return ""
    frames = [f for f in traceback.extract_tb(tb) if not is_own_frame(f.filename)]
    return "".join(traceback.format_list(frames))


def skip_own_frames(tb: TracebackType | None) -> TracebackType | None:
    """`tb` from the first frame that is not pydispatch's own (the user's code) on."""
    while tb is not None and is_own_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb
