"""`rfai train --nproc N`: N ranks on this machine over MLX's ring backend, one exit status.

Each rank is `python -m rfai_cli train ARGS` with the two variables MLX's ring backend reads
(`MLX_HOSTFILE`: a JSON list of each rank's `ip:port`, here 127.0.0.1; `MLX_RANK`), which is
what `mlx.launch --backend ring` sets up too. Unlike `mlx.launch` (mlx 0.32.4 exits 0 even when
every rank fails), the status is the worst rank's, so a script or CI sees a failed run. Rank 0
talks to the terminal; the others' stderr comes through prefixed with their rank. When a rank
fails, the others get a bounded time to notice (a lost peer is an error at their next
collective) before they are stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .distributed import RANK_TIMEOUT_EXIT

GRACE_S = 30.0  # how long the other ranks get to stop by themselves once one has failed
LAUNCHER_ENV = "RFAI_LAUNCHER_PID"


def launch_local(args: list[str], nproc: int) -> int:
    """Run `rfai train ARGS` as `nproc` ranks; the worst exit status (0, 130 for Ctrl-C, else the error's)."""
    with tempfile.TemporaryDirectory(prefix="rfai-ranks-") as scratch:
        hostfile = Path(scratch) / "hosts.json"
        hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"] for port in _free_ports(nproc)]))
        ranks = [_start(rank, args, hostfile) for rank in range(nproc)]
        forwarders = [threading.Thread(target=_forward, args=(rank, p), daemon=True) for rank, p in enumerate(ranks)]
        for thread in forwarders[1:]:
            thread.start()
        # Ctrl-C reaches every rank from the terminal; the launcher only waits for them.
        previous = signal.signal(signal.SIGINT, lambda *_: None)
        try:
            codes = _wait(ranks)
        finally:
            signal.signal(signal.SIGINT, previous)
        for thread in forwarders[1:]:
            thread.join(timeout=5)
    status = worst(codes)
    return 1 if status == RANK_TIMEOUT_EXIT else status  # a runtime failure, said in the lines above


def worst(codes: list[int]) -> int:
    """An error's status before an interruption's (130), before success; a signal is 128 + its number."""
    codes = [128 - code if code < 0 else code for code in codes]
    errors = [code for code in codes if code not in (0, 130)]
    return errors[0] if errors else (130 if 130 in codes else 0)


def watch_launcher() -> None:
    """In a rank started by `launch_local`: exit when the launcher is gone (killed, or timed out
    by a CI runner), instead of spinning on in a collective no one will join."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher:
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="rfai-launcher-watch", daemon=True).start()


def _start(rank: int, args: list[str], hostfile: Path) -> subprocess.Popen:
    env = {**os.environ, "MLX_HOSTFILE": str(hostfile), "MLX_RANK": str(rank), LAUNCHER_ENV: str(os.getpid())}
    quiet = rank > 0  # rank 0 speaks for the run
    return subprocess.Popen(
        [sys.executable, "-m", "rfai_cli", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.PIPE if quiet else None,
    )


def _forward(rank: int, process: subprocess.Popen) -> None:
    for line in process.stderr:
        sys.stderr.write(f"[rank {rank}] {line.decode(errors='replace')}")
        sys.stderr.flush()


def _wait(ranks: list[subprocess.Popen]) -> list[int]:
    failed_at, reported = None, set()
    while True:
        codes = [p.poll() for p in ranks]
        for rank, code in enumerate(codes):
            if code not in (None, 0, 130) and rank not in reported:  # name the rank that went first
                reported.add(rank)
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                sys.stderr.write(f"rfai train --nproc: rank {rank} {how}\n")
        if all(code is not None for code in codes):
            return codes
        if RANK_TIMEOUT_EXIT in codes:  # a rank gave up waiting: the ones still running never arrived
            _end_the_stragglers(ranks, codes)
            continue
        if failed_at is None and any(code not in (None, 0) for code in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
            for p in ranks:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.1)


def _end_the_stragglers(ranks: list[subprocess.Popen], codes: list[int | None]) -> None:
    """Name the ranks that did not arrive within training.rank_timeout and end them (SIGKILL also
    ends a stopped process)."""
    stragglers = [rank for rank, code in enumerate(codes) if code is None]
    names = ", ".join(f"rank {rank} (pid {ranks[rank].pid})" for rank in stragglers)
    sys.stderr.write(f"rfai train --nproc: {names} did not arrive within training.rank_timeout; ending every rank\n")
    for rank in stragglers:
        ranks[rank].kill()
        ranks[rank].wait()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
