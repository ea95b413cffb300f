"""Rich consoles for the edges of the program: tables and bars on a terminal, plain text in pipes."""

from __future__ import annotations

from functools import lru_cache

from rich.console import Console


@lru_cache(maxsize=None)
def stdout() -> Console:
    # rich already drops colour and animation when the stream is not a terminal, and honours NO_COLOR.
    return Console(soft_wrap=False)


@lru_cache(maxsize=None)
def stderr() -> Console:
    return Console(stderr=True)


def progress_enabled() -> bool:
    """Progress bars only when a person is watching (stderr is a terminal)."""
    return stderr().is_terminal
