"""Shared fixtures. CLI tests run the real `rfai` in a subprocess, as a shell script would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.hubserver import hub  # noqa: F401  (the Hub-compatible test server fixture)

REPO = Path(__file__).resolve().parent.parent
RFAI = [sys.executable, "-m", "rfai_cli"]  # the CLI, for tests that need their own Popen


class Cli:
    """Runs `python -m rfai_cli ARGS` in `cwd` and returns the CompletedProcess (text mode)."""

    def __init__(self, cwd: Path):
        self.cwd = cwd

    def __call__(self, *args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 300):
        # PYTHONPATH pins this checkout's package even when the cwd is a temporary directory.
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": pythonpath, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "rfai_cli", *map(str, args)],
            cwd=self.cwd,
            input=input,
            capture_output=True,
            text=not isinstance(input, bytes),
            env=full_env,
            timeout=timeout,
        )


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty directory: none reads the checkout's ./config.yaml or
    ./datasets, and none leaves files behind."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def rfai(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-weight llama in mlx-lm's directory format (see tests/support/tiny_model.py)."""
    from support.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
