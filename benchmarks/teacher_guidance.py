"""Does the teacher in the group teach what plain GRPO cannot? Paired runs, several seeds, held-out tasks.

The job: the embedded SmolLM2-135M trains on the starter curriculum's 27 train tasks (the teacher
is each task's reference solution), `--steps` steps of 4 prompts x G=4 samples of at most 128
new tokens, learning rate 1e-4, kl_beta 0.04. The arms of a seed are equal in everything (steps,
student completions, seed, data order) but `training.teacher_in_group`: `never` (plain GRPO),
`failing` (the teacher's answer joins groups where no student scores as well) and `always`
(every group). The held-out
tasks are the starter set's evaluation and validation tasks (16, none trained on), sampled G=4
times before and after training with the same seed, so the arms start from the same figures.

Per run it reports, on the held-out tasks: pass@1 (the mean share of a task's samples that pass
every test), pass@G (the share of tasks with at least one passing sample), and the tasks that no
sample solved; from `metrics.jsonl`, the mean share of zero-variance groups per step and the
share of groups the teacher joined. Then the paired difference (arm - never) of each figure over
the seeds, with its standard error.

    .venv/bin/python benchmarks/teacher_guidance.py [--seeds 0 1 2] [--arms never failing] [--steps 12] [--jobs 2] [--out DIR]

Runs go to DIR (default: a temporary directory); an arm whose `metrics.jsonl` already reached
`--steps` is read, not run again, so a stopped benchmark continues where it was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARMS = ("never", "failing", "always")
GROUP = 4

CONFIG = """
data:
  train_prompts: starter
  evaluation_prompts: {held_out}
teacher:
  cache_dir: {work}/teacher-cache
training:
  batch_size: 4
  num_samples_per_prompt: {group}
  max_new_tokens: 128
  learning_rate: 1.0e-4
  warmup_steps: 3
  max_steps: {steps}
  epochs: 100
  gradient_accumulation_steps: 2
  checkpoint_every: 1000
  checkpoint_dir: {run}/checkpoints
  eval_steps: 0
  eval_samples: {group}
  seed: {seed}
  teacher_in_group: {arm}
huggingface:
  dataset_output_dir: {run}/datasets
"""


def held_out_file(work: Path) -> Path:
    """The starter set's evaluation and validation tasks, as one prompt file."""
    source = REPO / "rfai_cli" / "data" / "tasks" / "starter.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    path = work / "held-out.jsonl"
    path.write_text(
        "".join(json.dumps({**row, "split": "evaluation"}) + "\n" for row in rows if row["split"] != "train")
    )
    return path


def run_arm(work: Path, held_out: Path, seed: int, arm: str, steps: int, threads: int) -> Path:
    run = work / f"seed{seed}-{arm}"
    metrics = run / "checkpoints" / "metrics.jsonl"
    if metrics.exists() and len(metrics.read_text().splitlines()) >= steps and _evaluated(run):
        return run
    run.mkdir(parents=True, exist_ok=True)
    for stale in ("checkpoints", "datasets"):
        subprocess.run(["rm", "-rf", str(run / stale)], check=True)
    config = run / "config.yaml"
    config.write_text(
        CONFIG.format(held_out=held_out, work=work, group=GROUP, steps=steps, run=run, seed=seed, arm=arm)
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads)}
    with open(run / "train.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "rfai_cli", "train", "--config", str(config)],
            cwd=run,
            env=env,
            stdout=log,
            stderr=log,
        )
    if done.returncode != 0:
        sys.exit(f"{run}: rfai train failed, see {run / 'train.log'}")
    return run


def _evaluated(run: Path) -> bool:
    path = run / "datasets" / "evaluation.jsonl"
    return path.exists() and len({json.loads(line)["step"] for line in path.read_text().splitlines()}) == 2


def held_out_figures(run: Path) -> dict:
    """pass@1, pass@G and never-solved tasks before (first step) and after (last step)."""
    rows = [json.loads(line) for line in (run / "datasets" / "evaluation.jsonl").read_text().splitlines()]
    out = {}
    for when, step in (("before", min(r["step"] for r in rows)), ("after", max(r["step"] for r in rows))):
        tasks: dict[str, list[bool]] = {}
        for row in rows:
            if row["step"] == step:
                tests = row["test_results"]["student"]
                tasks.setdefault(row["task_id"], []).append(tests["total"] > 0 and tests["passed"] == tests["total"])
        out[when] = {
            "pass@1": statistics.mean(sum(s) / len(s) for s in tasks.values()),
            f"pass@{GROUP}": statistics.mean(any(s) for s in tasks.values()),
            "never_solved": sum(not any(s) for s in tasks.values()),
            "tasks": len(tasks),
        }
    return out


def training_figures(run: Path) -> dict:
    metrics = [json.loads(line) for line in (run / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    return {
        "zero_variance": statistics.mean(m["zero_variance_fraction"] for m in metrics),
        "teacher_joined": statistics.mean(m.get("teacher_joined_fraction") or 0.0 for m in metrics),
        "train_pass_rate": statistics.mean(m["pass_rate"] or 0.0 for m in metrics),
        "seconds_per_step": statistics.median(
            m["seconds_generate"] + m["seconds_score"] + m["seconds_train"] for m in metrics
        ),
    }


def paired(values: list[float]) -> str:
    mean = statistics.mean(values)
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return f"{mean:+.3f} ± {error:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=["never", "failing"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each gets cores / jobs BLAS threads)")
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="rfai-guidance-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    held_out = held_out_file(work)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if "never" not in args.arms:
        parser.error("--arms needs never, the arm the others are compared with")
    plan = [(seed, arm) for seed in args.seeds for arm in args.arms]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = dict(zip(plan, pool.map(lambda job: run_arm(work, held_out, *job, args.steps, threads), plan)))

    figures = {job: {**held_out_figures(run), **training_figures(run)} for job, run in runs.items()}
    print(
        f"runs in {work}; {args.steps} steps x 4 prompts x G={GROUP}; held-out tasks: 16 (starter evaluation + validation)"
    )
    header = f"{'seed':>4} {'arm':>8} {'pass@1 before':>13} {'pass@1 after':>12} {'pass@4 after':>12} "
    header += f"{'never solved before/after':>25} {'zero-var share':>14} {'teacher joined':>14} {'s/step':>7}"
    print(header)
    for (seed, arm), f in figures.items():
        print(
            f"{seed:>4} {arm:>8} {f['before']['pass@1']:>13.3f} {f['after']['pass@1']:>12.3f} "
            f"{f['after'][f'pass@{GROUP}']:>12.3f} {f['before']['never_solved']:>12} / {f['after']['never_solved']:<10} "
            f"{f['zero_variance']:>14.2f} {f['teacher_joined']:>14.2f} {f['seconds_per_step']:>7.1f}"
        )
    for arm in [a for a in args.arms if a != "never"]:
        print(f"paired difference, {arm} - never, mean ± standard error over {len(args.seeds)} seeds:")
        for name, read in (
            ("held-out pass@1 after", lambda f: f["after"]["pass@1"]),
            (f"held-out pass@{GROUP} after", lambda f: f["after"][f"pass@{GROUP}"]),
            ("held-out tasks never solved after", lambda f: f["after"]["never_solved"]),
            ("zero-variance share of groups", lambda f: f["zero_variance"]),
        ):
            print(f"  {name}: {paired([read(figures[(s, arm)]) - read(figures[(s, 'never')]) for s in args.seeds])}")


if __name__ == "__main__":
    main()
