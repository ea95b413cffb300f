"""Data-parallel `rfai train` on MLX's ring backend, two real ranks on 127.0.0.1: the same update as
one process, every row once, exact resume after a rank is killed, the worst rank's exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, RFAI
from test_train import TRAIN_ENV, config_text, rows, twin_runs

from rfai_cli.train.launch import worst

UPDATE = r"""
import sys
from types import SimpleNamespace

import rfai_cli.engine  # noqa: F401
import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

from rfai_cli.engine.loading import load_model
from rfai_cli.engine.logprobs import frozen_hidden, token_batch
from rfai_cli.engine.lora import attach_lora, lora_layers
from rfai_cli.train.distributed import init_world
from rfai_cli.train.grpo import LossSettings, normaliser
from rfai_cli.train.update import update_policy

model_dir, out, mode, loss_type, guided = sys.argv[1:6]
world = init_world()
loaded = load_model(model_dir)
mx.random.seed(0)
attach_lora(loaded.model, rank=4, alpha=8, dropout=0.0, layers=2)
for layer in lora_layers(loaded.model):
    layer.lora_b = mx.ones_like(layer.lora_b) * 0.01
prompts = [[1, 2, 3], [1, 2, 3], [4, 5], [4, 5]]
completions = [[5, 6, 7], [9, 10], [11, 12, 13, 14, 20, 21], [15]]  # 5 tokens on rank 0, 7 on rank 1
advantages = [1.0, -1.0, 0.5, -0.5]
teacher = [0.0, 1.0, 0.0, 1.0] if guided == "teacher" else None  # one teacher sample per rank
mine = list(range(4)) if world.size == 1 else [2 * world.rank, 2 * world.rank + 1]
batch = token_batch([prompts[i] for i in mine], [completions[i] for i in mine])
settings = LossSettings(loss_type=loss_type, kl_beta=0.04)
totals = tuple(world.sum_floats(len(mine), float(batch.mask.sum().item()))) if mode == "global" else None
weights, scale = normaliser([batch.mask], settings, totals)
training = SimpleNamespace(num_iterations=2, gradient_accumulation_steps=2, max_grad_norm=100.0, distill_weight=0.0)
update_policy(
    loaded.model, optim.SGD(learning_rate=0.5), settings, training, batch, frozen_hidden(loaded.model, batch),
    mx.array([advantages[i] for i in mine]), weights, scale, world=world,
    teacher=None if teacher is None else mx.array([teacher[i] for i in mine]),
)
if world.is_main:
    from mlx.utils import tree_flatten
    np.savez(out, **{k: np.array(v) for k, v in tree_flatten(loaded.model.trainable_parameters())})
"""


def mlx_launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    launcher = Path(sys.executable).parent / "mlx.launch"
    return subprocess.run(
        [str(launcher), "-n", "2", "--backend", "ring", "--", sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize(("loss_type", "guided"), [("grpo", "-"), ("dapo", "-"), ("grpo", "teacher")])
def test_two_ranks_with_half_the_groups_each_make_the_one_process_update(tmp_path, tiny_model_dir, loss_type, guided):
    script = tmp_path / "update.py"
    script.write_text(UPDATE)
    single = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir), "single.npz", "global", loss_type, guided],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert single.returncode == 0, single.stderr
    for mode in ("global", "naive"):
        ran = mlx_launch(str(script), str(tiny_model_dir), f"{mode}.npz", mode, loss_type, guided, cwd=tmp_path)
        assert (tmp_path / f"{mode}.npz").exists(), ran.stderr
    one, two, naive = (np.load(tmp_path / name) for name in ("single.npz", "global.npz", "naive.npz"))
    assert all(np.allclose(one[k], two[k], atol=1e-6) for k in one.files)
    # normalising by each rank's own share instead of the whole batch's gives another update
    assert not all(np.allclose(one[k], naive[k], atol=1e-6) for k in one.files)


def child_pid(parent: int, rank: int, deadline: float) -> int:
    """The pid of the launcher's rank `rank` (a child whose environment says MLX_RANK=rank)."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                environ = (entry / "environ").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == parent and f"MLX_RANK={rank}".encode() in environ:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} under {parent}")


def gone(pid: int) -> bool:
    """Whether the process has ended (a zombie waiting for its parent counts)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def signal_rank_1_after_step_2(run_dir: Path, env: dict, signum: int) -> tuple[subprocess.Popen, int]:
    """A 2-rank `rfai train` in `run_dir`, and rank 1's pid, sent `signum` once checkpoint 2 exists."""
    run = subprocess.Popen(
        [*RFAI, "train", "--nproc", "2"], cwd=run_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    rank_1 = child_pid(run.pid, 1, deadline)
    while not (run_dir / "checkpoints" / "checkpoint-000002").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(rank_1, signum)
    return run, rank_1


@pytest.mark.slow
def test_a_two_rank_run_writes_every_row_once_and_resumes_exactly_after_a_rank_dies(tmp_path, tiny_model_dir):
    from safetensors.numpy import load_file

    env = dict(TRAIN_ENV)
    whole, broken = twin_runs(tmp_path, config_text(tiny_model_dir, 8))
    done = subprocess.run([*RFAI, "train", "--nproc", "2"], cwd=whole, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = rows(whole / "datasets" / "train.jsonl")
    keys = [(row["step"], row["task_id"], row["sample_index"]) for row in written]
    assert len(keys) == len(set(keys)) == 8 * 2 * 2  # every rank's rows, each once
    assert sorted(p.name for p in (whole / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-000004",
        "checkpoint-000006",
        "checkpoint-000008",
    ]

    run, victim = signal_rank_1_after_step_2(broken, env, signal.SIGKILL)
    killed_at = time.monotonic()
    _, stderr = run.communicate(timeout=120)
    assert run.returncode not in (0, None), stderr
    assert time.monotonic() - killed_at < 60  # the survivor noticed; nothing hung
    assert "lost contact with another rank" in stderr.decode()
    assert "rank 1 was killed by signal 9" in stderr.decode()  # the launcher names the lost rank
    assert not (broken / "checkpoints" / "checkpoint-000008").exists(), "the run ended before the kill"
    resumed = subprocess.run(
        [*RFAI, "train", "--nproc", "2", "--resume"], cwd=broken, env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = (load_file(str(d / "checkpoints" / "adapters.safetensors")) for d in (whole, broken))
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    assert rows(broken / "datasets" / "train.jsonl") == written


def test_a_batch_the_ranks_cannot_share_is_one_error_and_the_launch_fails(rfai, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2).replace("batch_size: 2", "batch_size: 3"))
    result = rfai("train", "--nproc", "2")
    assert result.returncode == 2, result.stderr
    assert "make it a multiple of the number of ranks" in result.stderr and "Traceback" not in result.stderr


def test_nproc_inside_a_launched_rank_is_an_error_not_a_launch_per_rank(rfai, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2))
    result = rfai("train", "--nproc", "2", env={"MLX_RANK": "0"})
    assert result.returncode == 2 and "drop it when launching with mlx.launch" in result.stderr, result.stderr
    assert not (tmp_path / "datasets").exists()


def test_the_launch_status_is_the_worst_ranks():
    assert worst([0, 0]) == 0
    assert worst([130, 0]) == 130
    assert worst([130, 1]) == 1
    assert worst([0, -9]) == 137


def test_a_rank_that_hangs_stops_the_run_within_the_deadline_and_resume_continues_exactly(tmp_path, tiny_model_dir):
    """kill -STOP one of two ranks after its second step: alive but stuck, it used to hold the other
    rank spinning in MLX's collective forever. Now the other gives up after training.rank_timeout,
    the launcher names the stuck rank and ends it, and --resume ends where an unbroken run ends."""
    from safetensors.numpy import load_file

    env = dict(TRAIN_ENV)
    whole, broken = twin_runs(tmp_path, config_text(tiny_model_dir, 4, "  rank_timeout: 15\n"))
    done = subprocess.run([*RFAI, "train", "--nproc", "2"], cwd=whole, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    run, stuck = signal_rank_1_after_step_2(broken, env, signal.SIGSTOP)
    stopped_at = time.monotonic()
    _, stderr = run.communicate(timeout=120)
    waited = time.monotonic() - stopped_at
    print(f"from the stop to the run's exit: {waited:.1f} s")  # docs/distributed.md quotes it (pytest -s)
    text = stderr.decode()
    assert run.returncode == 1, text
    assert 15 <= waited < 15 + 30, waited  # the deadline, plus the rest of a step and the launcher's poll
    assert "waited 15 s (training.rank_timeout) at a collective" in text
    assert f"rank 1 (pid {stuck}) did not arrive within training.rank_timeout" in text
    assert gone(stuck)
    assert not (broken / "checkpoints" / "checkpoint-000004").exists(), "the run ended before the stop"
    resumed = subprocess.run(
        [*RFAI, "train", "--nproc", "2", "--resume"], cwd=broken, env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = (load_file(str(d / "checkpoints" / "adapters.safetensors")) for d in (whole, broken))
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_a_rank_whose_teacher_never_answers_is_named_and_ended_within_the_deadline(tmp_path, tiny_model_dir):
    """One of two prompts gets no answer from the teacher server, ever (the request is held open,
    well inside teacher.timeout): the rank that asked hangs in its teacher call, the other waits at
    the next collective, and after training.rank_timeout the launcher names the rank that never
    arrived, ends it and exits 1."""
    import re
    import threading

    from support.chat_server import ChatServer

    release = threading.Event()

    def teacher(messages: list[dict]) -> str:
        if any("never answered" in m["content"] for m in messages):
            release.wait()  # held open until the test ends
        return "```python\ndef double(x):\n    return 2 * x\n```"

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt": f"Write double(x) returning twice x{note}.", "language": "python"}) + "\n"
            for note in ("", " (never answered)")
        )
    )
    config = config_text(tiny_model_dir, 4, "  rank_timeout: 15\n").replace("eval_steps: 2", "eval_steps: 0")
    with ChatServer(teacher) as server:
        teacher_section = (
            f"teacher:\n  provider: openai\n  model_name: scripted\n  base_url: {server.url}\n"
            f"  timeout: 600\n  max_retries: 0\n  write_tests: false\n  cache_dir: {tmp_path / 'answers'}\n"
        )
        (tmp_path / "config.yaml").write_text(config.replace("teacher:\n", teacher_section, 1))
        started = time.monotonic()
        try:
            run = subprocess.run(
                [*RFAI, "train", "--nproc", "2", "--prompts", str(prompts)],
                cwd=tmp_path,
                env=dict(TRAIN_ENV),
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            release.set()
    waited = time.monotonic() - started
    assert run.returncode == 1, run.stderr
    named = re.search(r"rank (\d) \(pid (\d+)\) did not arrive within training.rank_timeout", run.stderr)
    assert named, run.stderr
    assert waited < 15 + 60, waited  # the deadline, plus start-up and the other rank's step
    pid = int(named.group(2))
    assert gone(pid)
