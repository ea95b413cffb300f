"""Use the system OpenBLAS for MLX's CPU matmuls when it is installed (Linux only).

The mlx-cpu wheel links a bundled reference BLAS that is an order of magnitude slower than an
optimised one. Loading the system OpenBLAS with RTLD_GLOBAL before MLX binds its BLAS symbols
makes the dynamic linker resolve `cblas_sgemm` & co. to OpenBLAS instead. Once MLX has run its
first matmul the symbols are bound and a late preload changes nothing, hence this runs when
`rfai_cli.engine` is first imported.

`RFAI_OPENBLAS` overrides: `0` (or `off`) disables the preload, a path picks the library.
"""

from __future__ import annotations

import ctypes
import os
import sys

# Debian/Ubuntu's libopenblas0-pthread registers this soname with ld.so.cache; the fallbacks
# cover the alternatives-less layouts of other distributions.
_CANDIDATES = (
    "libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "libopenblas.so",
)

_loaded: str | None = None


def preload_openblas() -> str | None:
    """Load OpenBLAS globally if present; returns the library used, or None (absent, disabled, not Linux)."""
    global _loaded
    if _loaded is not None or not sys.platform.startswith("linux"):
        return _loaded
    choice = os.environ.get("RFAI_OPENBLAS", "").strip()
    if choice.lower() in {"0", "off", "false", "no"}:
        return None
    for candidate in (choice,) if choice else _CANDIDATES:
        try:
            ctypes.CDLL(candidate, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        _loaded = candidate
        return candidate
    return None


def openblas_library() -> str | None:
    """The OpenBLAS library preloaded into this process, if any (for subprocesses: LD_PRELOAD)."""
    return _loaded
