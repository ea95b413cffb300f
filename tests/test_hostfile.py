"""`rfai train --hostfile`: ranks on other hosts over ssh, here two "hosts" on this machine, one
local entry and one reached through a real sshd on 127.0.0.1 that the test starts and stops."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO, RFAI
from test_train import TRAIN_ENV, config_text, twin_runs
from test_train_distributed import gone

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ssh_host(tmp_path):
    """A host named `rfai-remote`: sshd on a free port of 127.0.0.1 with its own host key, which
    lets in this user's new key; `ssh` on `bin` (first on PATH) reaches it with that key."""
    if not Path(SSHD).exists():
        pytest.skip("no sshd on this machine: install Debian's openssh-server (.ci/run does)")
    home = tmp_path / "ssh"
    home.mkdir()
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True)
    shutil.copy(home / "user_key.pub", home / "authorized_keys")
    port = _free_port()
    (home / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(home / "sshd_config")], stderr=subprocess.PIPE)
    (home / "ssh_config").write_text(
        f"Host rfai-remote\n  HostName 127.0.0.1\n  Port {port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {home / 'user_key'}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {home / "ssh_config"} "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    deadline = time.monotonic() + 20
    while subprocess.run(["ssh", "rfai-remote", "true"], env={"PATH": path}, capture_output=True).returncode:
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"sshd did not start here: {server.stderr.read().decode(errors='replace')[-300:]}")
        time.sleep(0.2)
    yield SimpleNamespace(name="rfai-remote", path=path)
    server.terminate()
    server.wait(timeout=10)


def _hostfile(directory: Path, remote: str) -> Path:
    """Two ranks: one started here (an entry named 127.0.0.1), one through ssh."""
    hosts = {
        # As with mlx.launch, the remote rank gets the listed variables, not the launcher's.
        "envs": [f"PYTHONPATH={REPO}", "OPENBLAS_NUM_THREADS=1"],
        "hosts": [{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}, {"ssh": remote, "ips": ["127.0.0.1"]}],
    }
    path = directory / "hosts.json"
    path.write_text(json.dumps(hosts))
    return path


def _over_hosts(hostfile: Path, *args: str) -> list[str]:
    """`rfai train` over `hostfile`, its ring on free ports of this machine."""
    return [*RFAI, "train", "--hostfile", str(hostfile), "--starting-port", str(_free_port()), *args]


def _remote_rank(deadline: float) -> int:
    """The pid of the rank started through ssh (its launcher variable says so)."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
            except OSError:
                continue
            if b"RFAI_LAUNCHER_PID=ssh" in environ and b"MLX_RANK=1" in environ:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError("no rank started through ssh")


def test_a_run_over_ssh_gives_the_adapters_of_the_same_run_on_one_machine(tmp_path, tiny_model_dir, ssh_host):
    from safetensors.numpy import load_file

    local, hosts = twin_runs(tmp_path, config_text(tiny_model_dir, 4))
    # One BLAS thread in every rank of both runs: --nproc would otherwise split the cores itself.
    env = {**TRAIN_ENV, "PATH": ssh_host.path, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([*RFAI, "train", "--nproc", "2"], cwd=local, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ran = subprocess.run(
        _over_hosts(_hostfile(hosts, ssh_host.name)),
        cwd=hosts,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    ours, theirs = (load_file(str(d / "checkpoints" / "adapters.safetensors")) for d in (local, hosts))
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_a_remote_rank_that_hangs_is_named_with_its_host_and_ended_there(tmp_path, tiny_model_dir, ssh_host):
    """kill -STOP the rank on the ssh host: the local rank gives up after training.rank_timeout,
    and the launcher names the remote rank and its host, ends it over ssh and exits 1."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(config_text(tiny_model_dir, 6, "  rank_timeout: 15\n"))
    hostfile = _hostfile(run_dir, ssh_host.name)
    run = subprocess.Popen(
        _over_hosts(hostfile),
        cwd=run_dir,
        env={**TRAIN_ENV, "PATH": ssh_host.path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    remote = _remote_rank(deadline)
    while not (run_dir / "checkpoints" / "checkpoint-000002").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(remote, signal.SIGSTOP)
    _, stderr = run.communicate(timeout=120)
    text = stderr.decode()
    assert run.returncode == 1, text
    assert f"rank 1 (host rfai-remote, pid {remote}) did not arrive within training.rank_timeout" in text
    time.sleep(0.5)
    assert gone(remote)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "not JSON"),
        ("[]", "expected a non-empty list of hosts"),
        ('[{"ips": ["127.0.0.1"]}]', "host 0: expected an object with an 'ssh' host name"),
        ('{"backend": "gloo", "hosts": [{"ssh": "a"}]}', "backend 'gloo' is not one of ring, jaccl, nccl"),
        ('[{"ssh": "a", "ips": "10.0.0.1"}]', "host 0: 'ips' must be a list of addresses"),
        ('{"envs": ["no equals sign"], "hosts": [{"ssh": "a"}]}', "'envs' must be a list of NAME=value strings"),
        ('[{"ssh": "a"}, {"ssh": "b"}]', "--backend ring: every host in --hostfile needs 'ips'"),
    ],
)
def test_a_bad_hostfile_is_one_line_naming_it_and_starts_nothing(rfai, tmp_path, tiny_model_dir, content, expected):
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2))
    (tmp_path / "hosts.json").write_text(content)
    result = rfai("train", "--hostfile", "hosts.json")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "datasets").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nproc", "2", "--hostfile", "hosts.json"], "--nproc and --hostfile both start ranks"),
        (["--backend", "nccl"], "--backend and --starting-port go with --hostfile"),
        (["--hostfile", "hosts.json", "--backend", "mpi"], "MPI starts the ranks itself"),
    ],
)
def test_launch_options_that_do_not_fit_together_are_one_error(rfai, tmp_path, tiny_model_dir, args, expected):
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2))
    (tmp_path / "hosts.json").write_text('[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}]')
    result = rfai("train", *args)
    assert result.returncode == 2 and expected in result.stderr, result.stderr


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_the_ranks_on_every_host_after_the_step_and_resume_continues(
    tmp_path, tiny_model_dir, ssh_host, presses
):
    """Ctrl-C reaches the terminal's process group (the launcher and the local rank), not the ssh
    host: the local rank stops after its step, the remote one learns of it at the next step and
    stops too, a checkpoint is saved, and the launch exits 130. A second Ctrl-C stops the local
    rank at once; the remote one then loses contact, which is not a failure to report: 130 too."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(config_text(tiny_model_dir, 8))
    hostfile = _hostfile(run_dir, ssh_host.name)
    env = {**TRAIN_ENV, "PATH": ssh_host.path}
    run = subprocess.Popen(
        _over_hosts(hostfile), cwd=run_dir, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    remote = _remote_rank(deadline)
    while not (run_dir / "checkpoints" / "checkpoint-000002").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for _ in range(presses):
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        time.sleep(0.3)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr and "exited with status" not in stderr
    assert presses > 1 or "lost contact" not in stderr
    assert not (run_dir / "checkpoints" / "checkpoint-000008").exists()
    assert gone(remote)
    resumed = subprocess.run(
        _over_hosts(hostfile, "--resume"),
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "checkpoints" / "checkpoint-000008").exists()


def test_a_hostfile_of_one_host_runs_one_process(rfai, tmp_path, tiny_model_dir):
    """A ring of one rank waits for itself forever: one host is one ordinary process."""
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2))
    (tmp_path / "hosts.json").write_text('[{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}]')
    result = rfai("train", "--hostfile", "hosts.json", timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "checkpoint-000002").exists()
