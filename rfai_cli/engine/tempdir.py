"""MLX's CPU backend writes its compiled kernels under the C++ temporary directory, which is the
first of TMPDIR, TMP, TEMP and TEMPDIR that is set. A shell that sets one of them to something
else (`TEMP=1.0`, a temperature) makes every generation fail with `filesystem error:
temp_directory_path`. Before mlx runs, such a variable is overridden for this process by TMPDIR
pointing at Python's own choice of temporary directory (which skips unusable candidates)."""

from __future__ import annotations

import os
import tempfile

CANDIDATES = ("TMPDIR", "TMP", "TEMP", "TEMPDIR")  # std::filesystem::temp_directory_path's order on POSIX


def usable_temp_dir() -> str | None:
    """Point TMPDIR at a usable directory when the variable MLX would read is not one; returns
    the variable that was overridden, or None."""
    for name in CANDIDATES:
        value = os.environ.get(name)
        if value:
            if os.path.isdir(value):
                return None
            os.environ.pop("TMPDIR", None)  # not a candidate for gettempdir's choice
            tempfile.tempdir = None
            os.environ["TMPDIR"] = tempfile.gettempdir()
            return name
    return None
