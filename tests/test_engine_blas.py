"""The OpenBLAS preload: used when present, harmless when absent or disabled (fresh processes)."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import json
import rfai_cli.engine
from rfai_cli.engine.blas import openblas_library
import mlx.core as mx
import numpy as np
a = np.random.default_rng(0).standard_normal((300, 200), dtype=np.float32)
b = np.random.default_rng(1).standard_normal((200, 100), dtype=np.float32)
product = np.array(mx.array(a) @ mx.array(b))
maps = open("/proc/self/maps").read()
print(json.dumps({
    "library": openblas_library(),
    "mapped": "libopenblas" in maps,
    "correct": bool(np.allclose(product, a @ b, atol=1e-3)),
}))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is for Linux")


def probe(**env: str) -> dict:
    inherited = {k: v for k, v in os.environ.items() if k != "RFAI_OPENBLAS"}
    full_env = {**inherited, "PYTHONPATH": str(REPO), **env}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=full_env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(ctypes.util.find_library("openblas") is None, reason="OpenBLAS is not installed")
def test_openblas_is_preloaded_when_installed():
    report = probe()
    assert report["library"] and report["mapped"] and report["correct"]


@pytest.mark.parametrize("setting", ["0", "/nonexistent/libopenblas.so.0"])
def test_disabled_or_missing_openblas_is_harmless(setting):
    report = probe(RFAI_OPENBLAS=setting)
    assert report == {"library": None, "mapped": False, "correct": True}


def test_every_module_that_imports_mlx_preloads_openblas_first():
    """mlx binds its BLAS when first imported: a module outside the engine that imports mlx
    itself must import the engine (which preloads OpenBLAS) at module level, or sit in a package
    whose __init__ does, before any of its functions can run (the trainer once imported mlx
    first and ran about 10x slower)."""
    package = REPO / "rfai_cli"
    engine = package / "engine"

    def preloads(path: Path) -> bool:
        return any(
            line.startswith(("from .. import engine", "from . import engine", "import rfai_cli.engine"))
            for line in path.read_text().splitlines()
        )

    offenders = []
    for path in package.rglob("*.py"):
        text = path.read_text()
        if engine in path.parents or ("import mlx" not in text and "from mlx" not in text):
            continue
        packages = [folder / "__init__.py" for folder in path.parents if package in (folder, *folder.parents)]
        if not preloads(path) and not any(init.exists() and preloads(init) for init in packages):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
