"""What running `rfai train` on two ranks costs on one machine: seconds per step, 1 rank vs 2.

The same global batch (batch_size prompts x G samples) either in one process or split into
whole groups over two ranks (`rfai train --nproc 2`, MLX's ring backend on 127.0.0.1). On a
2-core machine the two ranks share the cores, so no speed-up is expected: the figure is the
overhead of the collectives and of gathering rows to rank 0. Also prints the size of the
gradient all-reduce (the LoRA parameters) for the chosen model and settings. Medians over the
steps of --runs runs each; the first step of each run is left out (loading, warm-up).

    .venv/bin/python benchmarks/distributed_overhead.py [--model tiny|embedded] [--steps 6] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import rfai_cli.engine  # noqa: F401, E402  (preloads OpenBLAS before mlx is imported)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def model_path(kind: str, scratch: Path) -> str:
    if kind == "embedded":
        from rfai_cli.engine.embedded import embedded_model_dir

        return str(embedded_model_dir())
    from support.tiny_model import build_tiny_model

    return str(build_tiny_model(scratch / "tiny", layers=4, hidden_size=128))


def step_seconds(model: str, nproc: int, steps: int, tokens: int, work: Path) -> list[float]:
    work.mkdir(parents=True)
    (work / "config.yaml").write_text(
        f"model:\n  base_model: {model}\nteacher:\n  max_tokens: 16\ntraining:\n  batch_size: 4\n"
        f"  num_samples_per_prompt: 4\n  max_new_tokens: {tokens}\n  max_steps: {steps}\n"
        f"  checkpoint_every: {steps}\n  eval_steps: 0\n  eval_samples: 1\n  eval_limit: 1\n"
        "  generation_temperature: 1.0\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "rfai_cli", "train", "--nproc", str(nproc), "--json"],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if result.returncode:
        sys.exit(f"rfai train --nproc {nproc} failed:\n{result.stderr[-2000:]}")
    metrics = [json.loads(line) for line in (work / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    return [m["seconds_generate"] + m["seconds_score"] + m["seconds_train"] for m in metrics[1:]]


def lora_megabytes(model: str, layers: int = 8, rank: int = 8) -> float:
    from mlx.utils import tree_flatten  # rfai_cli.engine, imported above, preloaded OpenBLAS first

    from rfai_cli.engine.loading import load_model
    from rfai_cli.engine.lora import attach_lora

    loaded = load_model(model)
    attach_lora(loaded.model, rank=rank, alpha=2 * rank, dropout=0.0, layers=layers)
    return sum(v.nbytes for _, v in tree_flatten(loaded.model.trainable_parameters())) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "embedded"], default="tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    tokens = 64 if args.model == "embedded" else 16
    with tempfile.TemporaryDirectory() as root:
        model = model_path(args.model, Path(root))
        figures = {}
        for nproc in (1, 2):
            seconds = []
            for run in range(args.runs):
                seconds += step_seconds(model, nproc, args.steps, tokens, Path(root) / f"n{nproc}-r{run}")
            figures[nproc] = statistics.median(seconds)
        size = lora_megabytes(model)
    print(f"{args.model} model, 4 prompts x G=4 x <= {tokens} tokens a step, {args.runs} runs of {args.steps} steps")
    for nproc, value in figures.items():
        print(f"  {nproc} rank{'s' if nproc > 1 else ''}: median {value:.2f} s/step")
    print(f"  2 ranks vs 1: {figures[2] / figures[1]:.2f}x the time per step (2 cores shared)")
    print(f"  gradient all-reduce per update: {size:.2f} MiB (LoRA rank 8, last 8 blocks)")


if __name__ == "__main__":
    main()
