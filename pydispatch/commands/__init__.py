"""What the `pydispatch` subcommands share: exit codes and the one-line error."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_SCHEDULER = "127.0.0.1:8786"


class CommandError(Exception):
    """A one-line error that ends the command with exit code `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code
