"""Run a command with its stderr on a pseudo-terminal, as a user at a terminal has it."""

from __future__ import annotations

import os
import pty
import subprocess
import threading
from pathlib import Path


def run_on_terminal(command: list[str], cwd: Path, env: dict, timeout: float = 300) -> tuple[int, str]:
    """(exit status, everything the command drew on the terminal)."""
    leader, follower = pty.openpty()
    screen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    terminal_env = {**env, "COLUMNS": "250", "TERM": "xterm"}
    terminal_env.pop("NO_COLOR", None)
    try:
        ran = subprocess.run(
            command, cwd=cwd, stderr=follower, stdout=subprocess.DEVNULL, env=terminal_env, timeout=timeout
        )
    finally:
        os.close(follower)
        reader.join(timeout=30)
        os.close(leader)
    return ran.returncode, screen.decode(errors="replace")
