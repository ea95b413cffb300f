"""The one exception type that reaches the user as a one-line message instead of a traceback."""

from __future__ import annotations


class RfaiError(Exception):
    """A problem with the user's input or environment: printed as one line, exit code `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(RfaiError):
    """Missing, unreadable or invalid configuration (exit 2, like a usage error)."""

    exit_code = 2


class InputError(RfaiError):
    """A dataset or prompt file that cannot be read (missing, a directory, malformed under --strict)."""

    exit_code = 2
