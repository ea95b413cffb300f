"""Rich consoles for the edges of the program: tables and bars on a terminal, plain text in pipes."""

from __future__ import annotations

import sys
from functools import lru_cache

from rich.console import Console

PIPE_WIDTH = 4096  # in a pipe or a CI log nothing is cut or wrapped: tables keep whole keys, lines whole URLs


def _width(stream) -> int | None:
    return None if stream.isatty() else PIPE_WIDTH


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits 1 here; a reader that has had enough (`| head`) is not a failure: cli.main exits 0.
        self.quiet = True
        raise BrokenPipeError


@lru_cache(maxsize=None)
def stdout() -> Console:
    # rich already drops colour and animation when the stream is not a terminal, and honours NO_COLOR.
    return _Console(soft_wrap=False, width=_width(sys.stdout))


@lru_cache(maxsize=None)
def stderr() -> Console:
    return _Console(stderr=True, width=_width(sys.stderr))


def progress_enabled() -> bool:
    """Progress bars only when a person is watching (stderr is a terminal)."""
    return stderr().is_terminal


def print_json(value, *, to_stderr: bool = False) -> None:
    """The one JSON style of every `--json`: one compact object on one line (stdout, or stderr
    when rows own stdout)."""
    import json

    stream = sys.stderr if to_stderr else sys.stdout
    stream.write(json.dumps(value, ensure_ascii=False) + "\n")
    stream.flush()
