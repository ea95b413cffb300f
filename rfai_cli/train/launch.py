"""`rfai train --nproc N` and `--hostfile FILE`: the ranks of one data-parallel run, one exit status.

`--nproc` starts N ranks here on MLX's ring backend over 127.0.0.1. `--hostfile` starts one rank
per entry of an mlx.launch host file (hostfile.py), over ssh for other hosts, the way mlx.launch
does: the same working directory when the host has it, the file's `envs`, the backend's variables
(`MLX_HOSTFILE` for ring, the coordinator for JACCL and NCCL) and `MLX_RANK`, then this Python
running `-m rfai_cli train ARGS`. Unlike `mlx.launch` (mlx 0.32.4 exits 0 even when every rank
fails), the status is the worst rank's, so a script or CI sees a failed run, and the failing rank
is named with its host. Rank 0 talks to the terminal; the others' stderr comes through prefixed
with their rank. When a rank fails, the others get a bounded time to notice (a lost peer is an
error at their next collective) before they are stopped; a rank that gave up waiting at a
collective (distributed.Deadline) gets the ones still running ended, a stopped one included.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError
from .distributed import BACKEND_ENV, RANK_TIMEOUT_EXIT
from .hostfile import Host, Hostfile

GRACE_S = 30.0  # how long the other ranks get to stop by themselves once one has failed
LAUNCHER_ENV = "RFAI_LAUNCHER_PID"  # a local rank's launcher; "ssh": a remote rank, whose stdin is the launcher's
STARTING_PORT = 32323  # mlx.launch's first port
_PID_LINE = "rfai-rank-pid"


@dataclass
class _Plan:
    """Where one rank runs and what it is given: variables, and files whose paths go in variables."""

    host: Host
    env: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class _Rank:
    index: int
    host: Host | None  # None: one of --nproc's
    process: subprocess.Popen
    pid: int | None = None  # on its host: a remote rank says it first thing

    @property
    def name(self) -> str:
        return f"rank {self.index}" if self.host is None else f"rank {self.index} (host {self.host.ssh})"

    @property
    def remote(self) -> bool:
        return self.host is not None and not self.host.local

    def described(self) -> str:
        """Its name with its pid (on its own host)."""
        pid = self.pid if self.remote else self.process.pid
        return (
            f"rank {self.index} (pid {pid})"
            if self.host is None
            else f"rank {self.index} (host {self.host.ssh}, pid {pid})"
        )

    def end(self) -> None:
        """SIGKILL (which also ends a stopped process), on its own host for a remote rank."""
        if self.remote and self.pid is not None:
            try:
                subprocess.run(_ssh(self.host, f"kill -9 {self.pid}"), capture_output=True, timeout=30, check=False)
            except subprocess.TimeoutExpired:  # the host is unreachable: closing the connection below is all there is
                pass
        self.process.kill()
        self.process.wait()


def launch_local(args: list[str], nproc: int) -> int:
    """Run `rfai train ARGS` as `nproc` ranks here; the worst exit status (0, 130 for Ctrl-C, else the error's)."""
    ring = json.dumps([[f"127.0.0.1:{port}"] for port in free_ports(nproc)])
    here = Host("127.0.0.1")
    shared = {BACKEND_ENV: "ring"}
    if "OPENBLAS_NUM_THREADS" not in os.environ:  # the ranks share this machine's cores instead of each taking all
        shared["OPENBLAS_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // nproc))
    plans = [_Plan(here, {**shared, "MLX_RANK": str(rank)}, {"MLX_HOSTFILE": ring}) for rank in range(nproc)]
    return _run(args, plans, "--nproc")


def launch_hosts(args: list[str], hostfile: Hostfile, backend: str, starting_port: int = STARTING_PORT) -> int:
    """Run `rfai train ARGS` as one rank per entry of `hostfile`, on `backend`; the worst exit status."""
    plans = [_Plan(host, _env_pairs(hostfile.envs)) for host in hostfile.hosts]
    hosts = hostfile.hosts
    if len(hosts) == 1:  # one process, no group (a ring of one would wait for itself forever)
        return _run(args, plans, "--hostfile")
    if backend == "ring":
        if any(not host.ips for host in hosts):
            raise InputError("--backend ring: every host in --hostfile needs 'ips', the addresses the ranks connect to")
        ports = iter(range(starting_port, starting_port + sum(len(host.ips) for host in hosts)))
        ring = json.dumps([[f"{ip}:{next(ports)}" for ip in host.ips] for host in hosts])
        for plan in plans:
            plan.files["MLX_HOSTFILE"] = ring
    else:  # jaccl, nccl: rank 0 coordinates
        if not hosts[0].ips:
            raise InputError(f"--backend {backend}: the first host in --hostfile needs 'ips', the address of rank 0")
        for index, plan in enumerate(plans):
            if backend == "nccl":
                earlier = sum(host.ssh == plan.host.ssh for host in hosts[:index])  # one GPU per entry of a host
                plan.env.update(
                    NCCL_HOST_IP=hosts[0].ips[0],
                    NCCL_PORT=str(starting_port),
                    MLX_WORLD_SIZE=str(len(hosts)),
                    CUDA_VISIBLE_DEVICES=str(earlier),
                )
            else:
                plan.env["MLX_JACCL_COORDINATOR"] = f"{hosts[0].ips[0]}:{starting_port}"
                plan.files["MLX_IBV_DEVICES"] = json.dumps([list(host.rdma) for host in hosts])
    for rank, plan in enumerate(plans):
        plan.env.update(MLX_RANK=str(rank), **{BACKEND_ENV: backend})
    return _run(args, plans, "--hostfile")


def worst(codes: list[int]) -> int:
    """An error's status before an interruption's (130), before success; a signal is 128 + its number."""
    codes = [128 - code if code < 0 else code for code in codes]
    errors = [code for code in codes if code not in (0, 130)]
    return errors[0] if errors else (130 if 130 in codes else 0)


def watch_launcher() -> None:
    """In a rank started here: exit when the launcher is gone (killed, or timed out by a CI
    runner), instead of spinning on in a collective no one will join. A local rank watches its
    parent; a remote one its stdin, which closes with the launcher's ssh connection."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher:
        return

    def watch() -> None:
        if launcher == "ssh":  # the raw descriptor: a thread in sys.stdin's reader would hold its lock at exit
            while os.read(0, 1 << 16):
                pass
        else:
            while os.getppid() == int(launcher):
                time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="rfai-launcher-watch", daemon=True).start()


def _run(args: list[str], plans: list[_Plan], how: str) -> int:
    with tempfile.TemporaryDirectory(prefix="rfai-ranks-") as scratch:
        named = how == "--hostfile"  # --nproc's ranks are all here: a host would say nothing
        ranks = [_start(rank, plan, args, Path(scratch), named) for rank, plan in enumerate(plans)]
        forwarders = [threading.Thread(target=_forward, args=(rank,), daemon=True) for rank in ranks]
        for thread in forwarders:
            thread.start()
        # Ctrl-C reaches the local ranks from the terminal, and the others through them; the launcher
        # only waits, and counts: after a second one the local ranks stop at once, and the remote ranks'
        # lost contact is its consequence, not a failure to report.
        presses: list[int] = []
        previous = signal.signal(signal.SIGINT, lambda *_: presses.append(1))
        try:
            codes = _wait(ranks, how, stopped_at_once=lambda: len(presses) > 1)
        finally:
            signal.signal(signal.SIGINT, previous)
        for thread in forwarders:
            thread.join(timeout=5)
    if len(presses) > 1:
        return 130
    status = worst(codes)
    return 1 if status == RANK_TIMEOUT_EXIT else status  # a runtime failure, said in the lines above


def _start(rank: int, plan: _Plan, args: list[str], scratch: Path, named: bool) -> _Rank:
    quiet = rank > 0  # rank 0 speaks for the run
    command = [sys.executable, "-m", "rfai_cli", "train", *args]
    if plan.host.local:
        env = {**os.environ, **plan.env, LAUNCHER_ENV: str(os.getpid())}
        for name, content in plan.files.items():
            path = scratch / f"{name.lower()}-{rank}.json"
            path.write_text(content)
            env[name] = str(path)
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.PIPE if quiet else None,
        )
        return _Rank(rank, plan.host if named else None, process)
    process = subprocess.Popen(
        _ssh(plan.host, _remote_script(plan, command)),
        stdin=subprocess.PIPE,  # never written: it closes when the launcher goes, and the rank then ends
        stdout=subprocess.DEVNULL if quiet else None,
        stderr=subprocess.PIPE,
        # Ctrl-C must not cut the connection: the local ranks get it, and every rank learns of it
        # at the next step and stops after it, as in one process.
        start_new_session=True,
    )
    return _Rank(rank, plan.host, process)


def _remote_script(plan: _Plan, command: list[str]) -> str:
    """A POSIX shell line: say the pid, go to this directory if the host has it, set the
    variables, write the files, and exec the rank (so the pid said is the rank's)."""
    here = shlex.quote(os.getcwd())
    lines = [f"echo {_PID_LINE} $$ >&2", f"if [ -d {here} ]; then cd {here}; fi"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in {**plan.env, LAUNCHER_ENV: "ssh"}.items()]
    for name, content in plan.files.items():
        lines.append(f"{name}=$(mktemp) && printf '%s' {shlex.quote(content)} > \"${name}\" && export {name}")
    lines.append("exec " + shlex.join(command))
    return "; ".join(lines)


def _ssh(host: Host, script: str) -> list[str]:
    # BatchMode: a host that would ask for a password fails at once instead of waiting on a prompt.
    return ["ssh", "-T", "-o", "BatchMode=yes", host.ssh, script]


def _forward(rank: _Rank) -> None:
    """Rank 0's stderr as it is, the others' prefixed with their rank; a remote rank's first line is its pid."""
    if rank.process.stderr is None:
        return
    prefix = "" if rank.index == 0 else f"[{rank.name}] "
    for line in rank.process.stderr:
        text = line.decode(errors="replace")
        if rank.remote and rank.pid is None and text.startswith(_PID_LINE):
            rank.pid = int(text.split()[1])
            continue
        sys.stderr.write(prefix + text)
        sys.stderr.flush()


def _wait(ranks: list[_Rank], how: str, stopped_at_once: Callable[[], bool]) -> list[int]:
    failed_at, reported = None, set()
    while True:
        codes = [rank.process.poll() for rank in ranks]
        for rank, code in zip(ranks, codes):
            failed = code not in (None, 0, 130) and not stopped_at_once()
            if failed and rank.index not in reported:  # name the rank that went first
                reported.add(rank.index)
                what = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                sys.stderr.write(f"rfai train {how}: {rank.name} {what}\n")
        if all(code is not None for code in codes):
            return codes
        if RANK_TIMEOUT_EXIT in codes:  # a rank gave up waiting: the ones still running never arrived
            _end_the_stragglers(ranks, codes, how)
            continue
        if failed_at is None and any(code not in (None, 0) for code in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
            for rank in ranks:
                if rank.process.poll() is None:
                    rank.end()
        time.sleep(0.1)


def _end_the_stragglers(ranks: list[_Rank], codes: list[int | None], how: str) -> None:
    """Name the ranks that did not arrive within training.rank_timeout and end them."""
    stragglers = [rank for rank, code in zip(ranks, codes) if code is None]
    names = ", ".join(rank.described() for rank in stragglers)
    sys.stderr.write(f"rfai train {how}: {names} did not arrive within training.rank_timeout; ending every rank\n")
    for rank in stragglers:
        rank.end()


def _env_pairs(envs: tuple[str, ...]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in envs)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
