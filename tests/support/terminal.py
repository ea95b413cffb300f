"""Run a command with its output on a pseudo-terminal, as a user at a terminal has it, and read
back what the screen (and its scrollback) shows through a terminal emulator (pyte)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading
from pathlib import Path


def run_on_terminal(
    command: list[str],
    cwd: Path,
    env: dict,
    timeout: float = 300,
    columns: int = 250,
    stdout_too: bool = False,
) -> tuple[int, str]:
    """(exit status, everything the command drew on the terminal: stderr, and stdout with `stdout_too`)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
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
    terminal_env = {**env, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}
    terminal_env.pop("NO_COLOR", None)
    try:
        ran = subprocess.run(
            command,
            cwd=cwd,
            stderr=follower,
            stdout=follower if stdout_too else subprocess.DEVNULL,
            env=terminal_env,
            timeout=timeout,
        )
    finally:
        os.close(follower)
        reader.join(timeout=30)
        os.close(leader)
    return ran.returncode, screen.decode(errors="replace")


def screen_lines(drawn: str, columns: int, lines: int = 50) -> list[str]:
    """What a `columns`-wide terminal shows after `drawn`, scrollback first, trailing blanks dropped:
    lines a live display overwrote are gone, as they are for the user."""
    import pyte

    screen = pyte.HistoryScreen(columns, lines, history=10_000)
    pyte.Stream(screen).feed(drawn)
    scrolled = ["".join(line[x].data for x in range(columns)) for line in screen.history.top]
    shown = [*(line.rstrip() for line in scrolled), *(line.rstrip() for line in screen.display)]
    while shown and not shown[-1]:
        shown.pop()
    return shown
