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


def first_line(text: object, limit: int = 200) -> str:
    """The first non-blank line of `text` (an exception shows its type when it has no message),
    cut to `limit` characters: what a one-line error may quote of someone else's message."""
    if isinstance(text, BaseException):
        text = str(text).strip() or type(text).__name__
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
