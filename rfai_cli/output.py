"""Writing an output file the way `cp` and `tee` users expect; the one helper every command uses.

- `-` is stdout.
- A device, FIFO or socket (`/dev/null`, `/dev/stdout`, a named pipe) is written through, never
  replaced by a regular file.
- A symlink is followed: its target is what gets written, and the link stays.
- A regular file (or a new one) is written to a hidden temporary file with a unique name beside
  it, given the old file's permissions (or the umask's), and renamed over it only when the whole
  output was written. A failure, Ctrl-C or kill leaves the old file as it was, and two runs
  writing the same path never share a temporary file.
Errors (a full disk, no permission, a missing directory) are one-line `RfaiError`s naming the path.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError, RfaiError

STDOUT = "-"
TEMP_PREFIX = ".rfai-tmp-"


def write_error(path: str | Path, exc: OSError) -> RfaiError:
    """The one-line error for a failed write to `path`."""
    return RfaiError(f"{path}: cannot write: {exc.strerror or exc}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def open_output(path: str | Path, *, make_parents: bool = False) -> Iterator[IO[bytes]]:
    """A binary stream for `path` (see the module docstring); committed when the block ends normally."""
    if str(path) == STDOUT:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(os.path.realpath(path))  # through symlinks: the link survives, its target is written
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise write_error(path, exc) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory, expected an output file")
    if mode is not None and not stat.S_ISREG(mode):
        try:
            stream = open(target, "wb")
        except OSError as exc:
            raise write_error(path, exc) from None
        with _failing_as(path), stream:
            yield stream
        return
    try:
        if make_parents:
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = temporary_beside(target)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with _failing_as(path), os.fdopen(fd, "wb") as stream:
            yield stream
        os.replace(temporary, target)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def temporary_beside(target: Path) -> tuple[int, str]:
    """(fd, path) of a new, uniquely named hidden file beside `target`, with the permissions
    `target` has (or the umask's for a new file), to be renamed over it once complete."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, temporary = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", dir=target.parent)
    os.fchmod(fd, mode)
    return fd, temporary


@contextmanager
def _failing_as(path: str | Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise write_error(path, exc) from None


def write_bytes(path: str | Path, data: bytes, *, make_parents: bool = False) -> None:
    """Replace `path` with `data`, atomically when it is a regular file."""
    with open_output(path, make_parents=make_parents) as stream:
        stream.write(data)


def write_text(path: str | Path, text: str, *, make_parents: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), make_parents=make_parents)
