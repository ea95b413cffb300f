"""`rfai train` with the tiny random MLX model: the step moves what it should, learns a learnable
reward, leaves the adapters alone when there is nothing to learn, and resumes exactly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO, RFAI

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.logprobs import frozen_hidden, padded_completion_logprobs, token_batch
from rfai_cli.engine.lora import attach_lora, lora_disabled, lora_layers
from rfai_cli.train.grpo import LossSettings, adaptive_kl_beta, group_advantages, normaliser, zero_variance_fraction
from rfai_cli.train.update import policy_value_and_grad, update_policy

TRAINING = SimpleNamespace(num_iterations=1, gradient_accumulation_steps=1, max_grad_norm=1.0)


def lora_model(tiny_model_dir):
    import mlx.core as mx

    loaded = load_model(str(tiny_model_dir))
    attach_lora(loaded.model, rank=4, alpha=8, dropout=0.0, layers=2)
    mx.eval(loaded.model.parameters())
    return loaded.model


def step(model, prompts, completions, advantages, learning_rate=0.01, settings=LossSettings(kl_beta=0.0)):
    import mlx.core as mx
    import mlx.optimizers as optim

    batch = token_batch(prompts, completions)
    weights, scale = normaliser([batch.mask], settings)
    optimizer = optim.AdamW(learning_rate=learning_rate, weight_decay=0.0)
    metrics, old = update_policy(
        model, optimizer, settings, TRAINING, batch, frozen_hidden(model, batch), mx.array(advantages), weights, scale
    )
    return old, metrics


def test_group_advantages_and_zero_variance():
    assert group_advantages([[1.0, 1.0], [0.0, 1.0]], "none") == [[0.0, 0.0], [-0.5, 0.5]]
    scaled = group_advantages([[0.0, 1.0]], "group")[0]
    assert scaled[0] < 0 < scaled[1] and abs(scaled[1] - 1.0) < 1e-3
    assert zero_variance_fraction([[1.0, 1.0], [0.0, 1.0]]) == 0.5


def test_a_positive_advantage_raises_its_log_prob_and_a_negative_one_lowers_it(tiny_model_dir):
    model = lora_model(tiny_model_dir)
    assert all(float(abs(layer.lora_b).max()) == 0 for layer in lora_layers(model))
    prompts, completions = [[1, 2, 3], [1, 2, 3]], [[5, 6, 7], [9, 10, 11]]
    before, metrics = step(model, prompts, completions, [1.0, -1.0])
    after, _ = padded_completion_logprobs(model, prompts, completions)
    assert not metrics["skipped"] and metrics["grad_norm"] > 0
    assert float(after[0].sum()) > float(before[0].sum())
    assert float(after[1].sum()) < float(before[1].sum())
    assert np.allclose(before[0], padded_completion_logprobs(lora_model(tiny_model_dir), prompts, completions)[0][0])
    assert any(float(abs(layer.lora_b).max()) > 0 for layer in lora_layers(model))  # the gradient reached LoRA


def test_all_equal_rewards_leave_the_adapters_where_they_were(tiny_model_dir):
    import mlx.core as mx
    from mlx.utils import tree_flatten

    model = lora_model(tiny_model_dir)
    before = {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    advantages = group_advantages([[0.7, 0.7]], "group")[0]
    step(model, [[1, 2, 3], [1, 2, 3]], [[5, 6], [7, 8]], advantages, settings=LossSettings(kl_beta=0.04))
    mx.eval(model.parameters())
    after = {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_learnable_reward_rises_within_a_few_dozen_steps(tiny_model_dir, seed):
    """Reward = the share of completion tokens from the lower half of the vocabulary (about half
    at the start, whatever the weights): a policy gradient on it must raise it clearly."""
    import mlx.core as mx
    import mlx.optimizers as optim

    from rfai_cli.engine.generation import SamplingSettings, generate_samples, seed_sampling

    loaded = load_model(str(tiny_model_dir))
    seed_sampling(seed)
    attach_lora(loaded.model, rank=8, alpha=16, dropout=0.0, layers=4)
    half = loaded.model.args.vocab_size // 2
    settings = LossSettings(kl_beta=0.0)
    optimizer = optim.AdamW(learning_rate=0.03, weight_decay=0.0)
    sampling = SamplingSettings(1.0, 1.0, 0, 6, stop_after_code_block=False)
    means = []
    for index in range(40):
        seed_sampling(1000 * seed + index)
        groups = generate_samples(loaded, ["hello"] * 2, 8, sampling)
        samples = [s for group in groups for s in group]
        rewards = [[sum(t < half for t in s.token_ids) / len(s.token_ids) for s in group] for group in groups]
        means.append(float(np.mean(rewards)))
        advantages = [a for group in group_advantages(rewards, "group") for a in group]
        prompts, completions = [s.prompt_ids for s in samples], [s.token_ids for s in samples]
        batch = token_batch(prompts, completions)
        weights, scale = normaliser([batch.mask], settings)
        update_policy(
            loaded.model,
            optimizer,
            settings,
            TRAINING,
            batch,
            frozen_hidden(loaded.model, batch),
            mx.array(advantages),
            weights,
            scale,
        )
    assert np.mean(means[-8:]) > np.mean(means[:8]) + 0.15, means


def config_text(tiny_model_dir: Path, max_steps: int, extra: str = "") -> str:
    return f"""
model:
  base_model: {tiny_model_dir}
teacher:
  max_tokens: 16
training:
  max_new_tokens: 8
  batch_size: 2
  num_samples_per_prompt: 2
  max_steps: {max_steps}
  checkpoint_every: 2
  warmup_steps: 1
  learning_rate: 0.001
  generation_temperature: 1.0
  eval_steps: 2
  eval_samples: 1
  eval_limit: 2
{extra}"""


# A run's environment for the kill and resume tests: this checkout, and nothing of the caller's.
TRAIN_ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}


def twin_runs(tmp_path: Path, config: str) -> tuple[Path, Path]:
    """Two run directories with one config: `whole` runs through, `broken` is interrupted and resumed."""
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for directory in (whole, broken):
        directory.mkdir()
        (directory / "config.yaml").write_text(config)
    return whole, broken


def rows(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for side in row["test_results"].values():
            (side or {}).pop("cpu_s", None)
        out.append({k: v for k, v in row.items() if k not in ("timestamp", "run_id")})
    return out


def test_train_writes_rows_metrics_and_checkpoints_in_mlx_lm_format(rfai, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 3))
    result = rfai("train", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 3
    written = rows(tmp_path / "datasets" / "train.jsonl")
    assert len(written) == 3 * 2 * 2 and {row["step"] for row in written} == {1, 2, 3}
    assert all("advantage" in row and row["epoch"] == 0 for row in written)
    metrics = [json.loads(line) for line in (tmp_path / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3] and all("zero_variance_fraction" in m for m in metrics)
    for key in ("entropy", "correctness_mean", "completion_tokens_max", "generated_tokens_per_second"):
        assert all(m[key] > 0 or key == "correctness_mean" for m in metrics), key
    assert all(0 < m["peak_memory_gib"] < 64 and 0 <= m["correctness_mean"] <= 1 for m in metrics)
    for name in ("adapters.safetensors", "adapter_config.json", "optimizer.safetensors", "state.json"):
        assert (tmp_path / "checkpoints" / "checkpoint-000003" / name).is_file()
    # mlx-lm itself loads the adapters
    load = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mlx_lm.utils import load; load(sys.argv[1], adapter_path=sys.argv[2])",
            str(tiny_model_dir),
            str(tmp_path / "checkpoints"),
        ],
        capture_output=True,
        text=True,
    )
    assert load.returncode == 0, load.stderr
    # ... and mlx_lm.generate with --adapter-path, and mlx_lm.fuse into a standalone model, each with the
    # base model named in adapter_config.json, as mlx_lm.lora names it
    base = json.loads((tmp_path / "checkpoints" / "adapter_config.json").read_text())["model"]
    assert base == str(tiny_model_dir)
    for command in (
        ["generate", "--model", base, "--adapter-path", "checkpoints", "--prompt", "hi", "-m", "4"],
        ["fuse", "--model", base, "--adapter-path", "checkpoints", "--save-path", "fused"],
    ):
        ran = subprocess.run([sys.executable, "-m", "mlx_lm", *command], cwd=tmp_path, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr[-2000:]
    assert (tmp_path / "fused" / "config.json").is_file() and list((tmp_path / "fused").glob("*.safetensors"))
    runs = json.loads((tmp_path / "datasets" / "run.json").read_text())["runs"]
    assert runs[-1]["command"] == "train"
    # held out: evaluation before (step 0) and after (step 3), validation every eval_steps
    evaluation = rows(tmp_path / "datasets" / "evaluation.jsonl")
    assert sorted({row["step"] for row in evaluation}) == [0, 3] and len(evaluation) == 2 * 2
    assert {row["step"] for row in rows(tmp_path / "datasets" / "validation.jsonl")} == {2}
    card = (tmp_path / "datasets" / "README.md").read_text()
    assert "| command | train |" in card and "validation" in card
    again = rfai("train")
    assert again.returncode == 2 and "--resume" in again.stderr


def test_a_run_the_epochs_end_saves_its_last_step(rfai, tmp_path, tiny_model_dir):
    tasks = [{"prompt": f"Return {i}.", "tests": [f"assert f() == {i}"], "entry_point": "f"} for i in range(5)]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    extra = "  epochs: 1\n  checkpoint_every: 50\n  eval_steps: 0\n"
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 10, extra).replace("  checkpoint_every: 2\n", ""))
    result = rfai("train", "--prompts", "tasks.jsonl", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 2  # 5 tasks, batches of 2: one epoch is 2 steps
    assert checkpoint_names(tmp_path / "checkpoints") == ["checkpoint-000002"]
    assert (tmp_path / "checkpoints" / "adapters.safetensors").is_file()


def test_adaptive_kl_steers_beta_toward_its_target():
    assert adaptive_kl_beta(0.04, kl=0.2, target=0.1, gain=0.5) == pytest.approx(0.04 * 1.1)  # error clipped to 0.2
    assert adaptive_kl_beta(0.04, kl=0.05, target=0.1, gain=0.5) == pytest.approx(0.04 * 0.9)
    assert adaptive_kl_beta(0.04, kl=0.1, target=0.1, gain=0.5) == pytest.approx(0.04)


def test_distillation_lowers_the_nll_of_the_teachers_answer_even_without_an_advantage(tiny_model_dir):
    """All-equal rewards give no policy gradient (the adapters stay put, tested above); with
    distill_weight the teacher's answer still pulls the policy toward it."""
    import mlx.core as mx
    import mlx.optimizers as optim

    from rfai_cli.train.update import nll as _nll

    model = lora_model(tiny_model_dir)
    settings = LossSettings(kl_beta=0.0)
    training = SimpleNamespace(**vars(TRAINING), distill_weight=1.0)
    batch = token_batch([[1, 2, 3], [1, 2, 3]], [[5, 6], [7, 8]])
    teacher = token_batch([[1, 2, 3]], [[40, 41, 42, 43]])
    weights, scale = normaliser([batch.mask], settings)
    optimizer = optim.AdamW(learning_rate=0.01, weight_decay=0.0)
    before = float(_nll(model, teacher, None).item())
    for _ in range(5):
        metrics, _ = update_policy(
            model, optimizer, settings, training, batch, None, mx.zeros(2), weights, scale, distill=teacher
        )
    assert float(_nll(model, teacher, None).item()) < before - 0.05 and metrics["distill_nll"] > 0


def test_adaptive_kl_save_total_limit_and_distillation_in_a_run(rfai, tmp_path, tiny_model_dir):
    extra = "  checkpoint_every: 1\n  save_total_limit: 2\n  target_kl: 0.001\n  kl_gain: 1.0\n  distill_weight: 0.5\n"
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 4).replace("  checkpoint_every: 2\n", "") + extra)
    result = rfai("train")
    assert result.returncode == 0, result.stderr
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-000003", "checkpoint-000004"]
    metrics = [json.loads(line) for line in (tmp_path / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    betas = [m["kl_beta"] for m in metrics]
    assert betas[0] == 0.04 and len(set(betas)) > 1  # the controller moved it
    assert all(m["distill_nll"] > 0 for m in metrics)
    state = json.loads((tmp_path / "checkpoints" / "checkpoint-000004" / "state.json").read_text())
    assert state["kl_beta"] not in (None, betas[-1])  # the next step's weight, kept for an exact resume


def test_report_to_tensorboard_and_wandb_and_the_curves_in_the_card(rfai, tmp_path, tiny_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    extra = "  report_to: [tensorboard, wandb]\n  log_completions: 2\n"
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2, extra))
    result = rfai("train", env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert result.returncode == 0, result.stderr
    shown = result.stderr.splitlines()
    for step in (1, 2):  # each step's line, then its two samples: task, reward, tests, prompt and code heads
        at = next(i for i, line in enumerate(shown) if line.startswith(f"step {step}:"))
        assert all(
            re.match(r"  \S+: reward (-|\d\.\d{3}), tests (-|\d+/\d+) \| .+ \| ", line)
            for line in shown[at + 1 : at + 3]
        )
    (run,) = (tmp_path / "checkpoints" / "runs").iterdir()
    events = EventAccumulator(str(run))
    events.Reload()
    assert [e.step for e in events.Scalars("train/reward_mean")] == [1, 2]
    texts = events.Tensors("completions/text_summary")
    assert [e.step for e in texts] == [1, 2]
    table = texts[0].tensor_proto.string_val[0].decode()
    assert table.startswith("| task | reward | tests | prompt | code |") and len(table.splitlines()) == 4
    metrics = [json.loads(line) for line in (tmp_path / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([m["loss"] for m in metrics])
    (offline,) = (tmp_path / "checkpoints" / "wandb").glob("offline-run-*")
    logged = next(offline.glob("*.wandb")).read_bytes()
    assert b"reward_mean" in logged and b"completions" in logged
    # the curves: a PNG beside the metrics and in the dataset, embedded in the card
    for png in (tmp_path / "checkpoints" / "training_curves.png", tmp_path / "datasets" / "training_curves.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (tmp_path / "datasets" / "README.md").read_text()
    assert "](training_curves.png)" in card and "Evaluation before and after training" in card
    assert "| lora | rank 8, alpha 16 (scale 2)" in card and "AdamW, lr 0.001" in card


def test_wandb_without_a_login_is_one_line_before_the_model_loads(rfai, tmp_path, tiny_model_dir):
    """wandb.init online without a key used to end the run in a traceback, after the model had loaded."""
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 1, "  report_to: wandb\n"))  # one name, as TRL
    no_login = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc"), "WANDB_MODE": "", "WANDB_API_KEY": ""}
    result = rfai("train", env=no_login)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: training.report_to: wandb has no login: run `wandb login`, set WANDB_API_KEY, "
        "or set WANDB_MODE=offline to log to local files"
    ]
    assert not (tmp_path / "checkpoints").exists()


def test_a_wandb_login_is_the_key_in_the_environment_or_netrc(tmp_path, monkeypatch):
    from rfai_cli.train.reporting import _wandb_can_log

    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not _wandb_can_log()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "0" * 40 + "\n")
    assert _wandb_can_log()  # what `wandb login` saves
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert not _wandb_can_log()  # a login for another server
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert _wandb_can_log()


def test_a_terminal_gets_a_live_view_and_a_pipe_gets_plain_lines(rfai, tmp_path, tiny_model_dir):
    import os

    from support.terminal import run_on_terminal, screen_lines

    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2, "  eval_steps: 0\n"))
    piped = rfai("train")
    assert piped.returncode == 0, piped.stderr
    lines = [line for line in piped.stderr.splitlines() if line.startswith("step ")]
    assert len(lines) == 2 and "reward" in lines[0] and "generate" in lines[0] and "\x1b" not in piped.stderr

    for columns in (60, 80, 120):
        __import__("shutil").rmtree(tmp_path / "checkpoints")
        code, text = run_on_terminal(
            [*RFAI, "train", "--output-dir", f"live{columns}"],
            tmp_path,
            {**os.environ, "PYTHONPATH": str(REPO)},
            columns=columns,
        )
        assert code == 0, text
        shown = screen_lines(text, columns)
        # Every step's line stays in the scrollback, above the bar (a live text column overwrote them).
        assert [line.split(":")[0] for line in shown if line.startswith("step ")] == ["step 1", "step 2"], shown
        (bar,) = [line for line in shown if line.startswith("training")]
        assert bar.rstrip().endswith(("2/2 0:00:00", "2/2 -:--:--")), (columns, bar)  # counts and ETA fit


def test_a_missing_report_library_is_one_line_before_training(rfai, tmp_path, tiny_model_dir):
    """A run asked to report where it cannot fails before it samples anything."""
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2, "  report_to: [tensorboard]\n"))
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "tensorboardX.py").write_text("raise ImportError('not installed')\n")
    result = rfai("train", env={"PYTHONPATH": f"{blocker}:{REPO}"})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "needs the tensorboardX package" in result.stderr
    assert not (tmp_path / "datasets" / "train.jsonl").exists()


def killed_and_resumed(tmp_path: Path, config: str, steps: int) -> list[dict]:
    """Run `config` through in one directory; in another, kill -9 it after its second checkpoint
    and resume it. The adapters and rows must match; returns the uninterrupted run's rows."""
    from safetensors.numpy import load_file

    whole, broken = twin_runs(tmp_path, config)
    assert subprocess.run([*RFAI, "train"], cwd=whole, env=TRAIN_ENV, capture_output=True).returncode == 0
    victim = subprocess.Popen(
        [*RFAI, "train"], cwd=broken, env=TRAIN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (broken / "checkpoints" / "checkpoint-000002").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    last = broken / "checkpoints" / f"checkpoint-{steps:06d}"
    assert not last.exists(), "the run ended before it could be killed"
    resumed = subprocess.run([*RFAI, "train", "--resume"], cwd=broken, env=TRAIN_ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    ours, theirs = (load_file(str(d / "checkpoints" / "adapters.safetensors")) for d in (whole, broken))
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)
    written = rows(whole / "datasets" / "train.jsonl")
    assert rows(broken / "datasets" / "train.jsonl") == written
    return written


@pytest.mark.slow
def test_kill_9_and_resume_gives_the_same_adapters_and_rows(tmp_path, tiny_model_dir):
    killed_and_resumed(tmp_path, config_text(tiny_model_dir, 8), 8)


# Loaded as sitecustomize into a training run: kill -9 at one point of the step-4 checkpoint's save.
KILLER = """
import json, os, pathlib, signal

_point, _rename, _write_text = os.environ["RFAI_TEST_KILL_AT"], os.rename, pathlib.Path.write_text


def rename(source, target, *args, **kwargs):
    if _point == "rename" and str(target).endswith("checkpoint-000004"):
        os.kill(os.getpid(), signal.SIGKILL)  # complete in its staging directory, not yet in place
    return _rename(source, target, *args, **kwargs)


def write_text(self, text, *args, **kwargs):
    if _point == "state" and self.name == "state.json" and json.loads(text)["step"] == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # adapters and optimizer written, the state not yet
    return _write_text(self, text, *args, **kwargs)


os.rename, pathlib.Path.write_text = rename, write_text
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["state", "rename"])
def test_a_kill_during_a_save_leaves_the_previous_checkpoint_to_resume_from(tmp_path, tiny_model_dir, point):
    from safetensors.numpy import load_file

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILLER)
    whole, broken = twin_runs(tmp_path, config_text(tiny_model_dir, 6, "  eval_steps: 0\n"))
    env = dict(TRAIN_ENV)
    assert subprocess.run([*RFAI, "train"], cwd=whole, env=env, capture_output=True).returncode == 0
    killed = subprocess.run(
        [*RFAI, "train"],
        cwd=broken,
        env={**env, "PYTHONPATH": f"{hooks}:{REPO}", "RFAI_TEST_KILL_AT": point},
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL
    checkpoints = broken / "checkpoints"
    assert checkpoint_names(checkpoints) == ["checkpoint-000002"]  # the half-saved one is not visible
    assert list(checkpoints.glob(".checkpoint-*")), "the kill should have left the unfinished save behind"
    resumed = subprocess.run([*RFAI, "train", "--resume"], cwd=broken, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not list(checkpoints.glob(".checkpoint-*"))  # cleaned by the next save
    ours, theirs = (load_file(str(d / "checkpoints" / "adapters.safetensors")) for d in (whole, broken))
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    assert rows(whole / "datasets" / "train.jsonl") == rows(broken / "datasets" / "train.jsonl")


def checkpoint_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("checkpoint-*"))


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, tiny_model_dir):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 8))
    run = subprocess.Popen([*RFAI, "train"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "checkpoints" / "checkpoint-000002").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "interrupted" in stderr and "rfai train --resume" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "checkpoints" / "checkpoint-000008").exists()
    resumed = subprocess.run(
        [*RFAI, "train", "--resume", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 8
    steps = [row["step"] for row in rows(tmp_path / "datasets" / "train.jsonl")]
    assert steps == sorted(steps) and sorted(set(steps)) == list(range(1, 9)) and len(steps) == 8 * 4


def test_bad_training_input_is_one_line(rfai, tmp_path, tiny_model_dir):
    def error(result) -> str:
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return lines[0]

    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2))
    assert "no-such.jsonl" in error(rfai("train", "--prompts", "no-such.jsonl"))
    (tmp_path / "one.jsonl").write_text('{"prompt": "Add.", "tests": ["assert add(1, 2) == 3"]}\n')
    assert "batch_size is 2 but there are only 1 training prompts" in error(rfai("train", "--prompts", "one.jsonl"))
    assert "no checkpoint to resume from" in error(rfai("train", "--resume"))
    assert rfai("train").returncode == 0
    other = tmp_path / "other-model"
    __import__("shutil").copytree(tiny_model_dir, other)
    message = error(rfai("train", "--resume", "--model", str(other)))
    assert "was trained with model.base_model = " in message and "--force" in message


def test_a_resume_of_a_finished_run_changes_nothing_and_a_higher_max_steps_goes_on(rfai, tmp_path, tiny_model_dir):
    """A finished run resumed samples nothing again: its files stay byte for byte (an upload after it
    makes no new commit); raising --max-steps trains on, evaluating once more at the new end."""
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 2))
    assert rfai("train").returncode == 0
    datasets = tmp_path / "datasets"
    before = published_files(datasets)
    again = rfai("train", "--resume")
    assert again.returncode == 0, again.stderr
    assert published_files(datasets) == before
    assert "already complete" in again.stdout
    longer = rfai("train", "--resume", "--max-steps", "4", "--json")
    assert longer.returncode == 0, longer.stderr
    assert json.loads(longer.stdout)["steps"] == 4
    evaluated = [row["step"] for row in rows(datasets / "evaluation.jsonl")]
    assert evaluated == [0] * 2 + [2] * 2 + [4] * 2  # eval_limit 2, eval_samples 1: once per end, none twice
    assert (datasets / "evaluation.jsonl").read_bytes().startswith(before["evaluation.jsonl"])


def published_files(directory: Path) -> dict[str, bytes]:
    """What an upload of `directory` would send, by name (not the lock file, which holds a pid)."""
    return {path.name: path.read_bytes() for path in directory.iterdir() if not path.name.startswith(".")}


def test_every_training_key_is_in_the_resume_fingerprint_or_safe_to_change():
    from rfai_cli.config import Config, TrainingSettings
    from rfai_cli.runs import SAFE_ON_RESUME, TRAINED_WITH, fingerprint

    sampling = {"generation_temperature", "top_p", "top_k", "max_new_tokens", "seed"}
    assert len(fingerprint(Config())["sampling"]) == len(sampling)
    listed = [*TRAINED_WITH, *SAFE_ON_RESUME, *sampling]
    assert sorted(listed) == sorted(TrainingSettings.model_fields)  # each key once


def test_a_resume_with_another_learning_rate_is_refused_by_its_config_key(rfai, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 1))
    assert rfai("train").returncode == 0
    path = tmp_path / "config.yaml"
    path.write_text(path.read_text().replace("learning_rate: 0.001", "learning_rate: 0.002"))
    refused = rfai("train", "--resume", "--max-steps", "2")
    assert refused.returncode != 0 and "training.learning_rate = 0.001, this run has 0.002" in refused.stderr
    path.write_text(path.read_text().replace("learning_rate: 0.002", "learning_rate: 0.001"))
    assert rfai("train", "--resume", "--max-steps", "2").returncode == 0  # max_steps is safe to change


def test_every_training_key_is_read_by_some_code():
    """A key in config.example.yaml that no code reads would be a promise the tool does not keep."""
    from rfai_cli.config import TrainingSettings

    sources = "\n".join(p.read_text() for p in (REPO / "rfai_cli").rglob("*.py") if p.name != "config.py")
    unread = [key for key in TrainingSettings.model_fields if f".{key}" not in sources]
    assert unread == []


def test_a_teacher_switching_lora_off_meanwhile_cannot_change_the_update(tiny_model_dir):
    """The local teacher (the same model, LoRA off) decodes from scorer threads. Taken while it
    holds LoRA off, a naive gradient is the base model's; the trainer's update waits for it."""
    import threading

    import mlx.core as mx
    from mlx.utils import tree_flatten

    from rfai_cli.engine.generation import GENERATION_LOCK

    prompts, completions, advantages = [[1, 2, 3], [1, 2, 3]], [[5, 6, 7], [9, 10, 11]], [1.0, -1.0]

    def fresh():
        mx.random.seed(0)  # the same adapters every time
        model = lora_model(tiny_model_dir)
        for layer in lora_layers(model):  # adapters that do something, so LoRA off is visible
            layer.lora_b = mx.ones_like(layer.lora_b) * 0.01
        mx.eval(model.parameters())
        return model

    def gradient(model):
        batch = token_batch(prompts, completions)
        weights, scale = normaliser([batch.mask], LossSettings(kl_beta=0.0))
        _, grads = policy_value_and_grad(model, LossSettings(kl_beta=0.0))(
            model, batch, None, mx.array(advantages), None, batch.mask, weights, scale
        )
        mx.eval(grads)
        return {k: np.array(v) for k, v in tree_flatten(grads)}

    def teacher_busy(model, holding: threading.Event):
        with GENERATION_LOCK, lora_disabled(model):
            holding.set()
            time.sleep(0.5)

    baseline = gradient(fresh())
    model = fresh()
    holding = threading.Event()
    thread = threading.Thread(target=teacher_busy, args=(model, holding))
    thread.start()
    holding.wait()
    naive = gradient(model)  # no lock: computed on the base model
    thread.join()
    assert any(not np.allclose(naive[k], baseline[k]) for k in baseline), "the race should show without the lock"

    def updated(model, interfere: bool):
        import mlx.optimizers as optim

        batch = token_batch(prompts, completions)
        weights, scale = normaliser([batch.mask], LossSettings(kl_beta=0.0))
        mx.eval(weights)
        thread = None
        if interfere:
            holding = threading.Event()
            thread = threading.Thread(target=teacher_busy, args=(model, holding))
            thread.start()
            holding.wait()
        update_policy(
            model,
            optim.AdamW(learning_rate=0.01),
            LossSettings(kl_beta=0.0),
            TRAINING,
            batch,
            None,
            mx.array(advantages),
            weights,
            scale,
        )
        if thread:
            thread.join()
        return {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}

    alone, raced = updated(fresh(), False), updated(fresh(), True)
    assert all(np.array_equal(alone[k], raced[k]) for k in alone)


@pytest.mark.parametrize("variable", ["TEMP", "TMPDIR"])
def test_a_temperature_in_the_shells_temp_variable_does_not_break_mlx(rfai, tmp_path, tiny_model_dir, variable):
    """MLX keeps compiled kernels in the temporary directory that TMPDIR/TMP/TEMP/TEMPDIR names;
    `TEMP=1.0` (a temperature, a common shell variable) once made every run a traceback."""
    (tmp_path / "config.yaml").write_text(config_text(tiny_model_dir, 1))
    result = rfai("train", env={variable: "1.0"})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_a_sample_shown_on_the_terminal_cannot_drive_it():
    """Generated code is untrusted: a terminal escape in it (retitle the window, clear the screen)
    is shown as text, never sent to the user's terminal."""
    from rfai_cli.commands.train import completion_lines

    attack = "def f():\n    return 1  # \x1b]0;pwned\x07\x1b[2J\x1b[31m"
    naive = " ".join(attack.split())  # the heads with only whitespace folded: the escapes go through
    assert "\x1b" in naive and "\x07" in naive
    sample = {
        "task_id": "t",
        "prompt": "Write f.\x1b[2J",
        "code": attack,
        "reward": 0.5,
        "tests": {"passed": 1, "total": 2},
    }
    (line,) = completion_lines({"completions": [sample]}, head=200)
    assert line.isprintable() and "\\x1b]0;pwned\\x07" in line
    assert line.startswith("  t: reward 0.500, tests 1/2 | Write f.\\x1b[2J | def f(): return 1")
