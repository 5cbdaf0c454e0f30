"""The `pydispatch` subcommands (`run`, `worker`) and what they share: exit codes.

Room: the top, with `cli`; commands may use every layer below them.
"""

from __future__ import annotations

from ..errors import CommandError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_SCHEDULER = "127.0.0.1:8786"

__all__ = [
    "DEFAULT_SCHEDULER",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
]
