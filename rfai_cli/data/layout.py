"""The dataset directory as a whole: making sure it can be written, and one writer at a time."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import InputError, RfaiError

LOCK_FILE = ".rfai.lock"


@contextmanager
def dataset_lock(directory: str | Path) -> Iterator[Path]:
    """Hold `directory` (created if missing) for one collecting or training run.

    A second run on the same directory fails at once with a one-line error instead of
    interleaving its rows with the first one's. The lock is the kernel's (flock): a run that is
    killed, even with kill -9, releases it."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: is a file, expected a dataset directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RfaiError(f"{directory}: cannot write: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RfaiError(f"{directory}: another rfai run is writing this dataset directory (pid {holder}); "
                            "wait for it to finish or choose another output directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield directory
    finally:
        os.close(fd)
