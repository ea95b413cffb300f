"""`model.keep_quantized`: a 4-bit model kept 4-bit against the same model dequantized to float32,
on this device, in the same run: generation and a training step's passes, time and peak memory.

The model is the embedded SmolLM2-135M as its GGUF stores it (4-bit, 8-bit embedding), converted
without dequantizing; both legs load that one directory, so they hold the same weights. The
training leg is rfai's update (update.py: frozen blocks once, each prompt once per group, LoRA
rank 8 on the last 8 blocks) on a batch shaped like a step's; generation decodes --prompts x
--group samples of --new-tokens tokens (no stop at a closed code block).

    .venv/bin/python benchmarks/quantized.py [--runs 1] [--prompts 2] [--group 2] [--new-tokens 16]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)

LEGS = {"float32 (dequantized)": False, "4-bit (keep_quantized)": True}


def measure(model_dir: str, keep: bool, args) -> dict:
    """One leg in this process: load, generate, train; medians over --runs, peak memory."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from train_passes import rfai_step

    from rfai_cli.engine.generation import SamplingSettings, chat_prompt, generate_samples
    from rfai_cli.engine.loading import load_model
    from rfai_cli.engine.lora import attach_lora
    from rfai_cli.train.grpo import LossSettings

    loaded = load_model(model_dir, keep_quantized=keep)
    prompts = [
        chat_prompt(
            loaded.tokenizer, f"Write a Python function f{i}(xs) that returns the {i}th largest item.", "python"
        )
        for i in range(args.prompts)
    ]
    settings = SamplingSettings(0.8, 0.95, 0, args.new_tokens, stop_after_code_block=False)
    mx.random.seed(0)
    attach_lora(loaded.model, rank=8, alpha=16, dropout=0.0, layers=8)
    rng = np.random.default_rng(0)
    distinct = [[int(t) for t in rng.integers(1, 40000, 180)] for _ in range(args.prompts)]
    train_prompts = [p for p in distinct for _ in range(args.group)]
    completions = [[int(t) for t in rng.integers(1, 40000, 100)] for _ in train_prompts]
    advantages = mx.array(rng.normal(size=len(train_prompts)).astype(np.float32))
    loss = LossSettings(kl_beta=0.04, max_new_tokens=128)
    generate, train = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        groups = generate_samples(loaded, prompts, args.group, settings)
        generate.append(time.perf_counter() - started)
        tokens = sum(len(s.token_ids) for g in groups for s in g)
        started = time.perf_counter()
        rfai_step(loaded.model, train_prompts, completions, advantages, loss, optim.AdamW(learning_rate=0.0), 4)
        train.append(time.perf_counter() - started)
    return {
        "generate_s": statistics.median(generate),
        "tokens_per_s": tokens / statistics.median(generate),
        "train_s": statistics.median(train),
        "peak_mlx_gib": mx.get_peak_memory() / 2**30,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Small by default: on CPU the 4-bit leg is 10-20x slower (a run of this size takes ~3 minutes).
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--leg", help=argparse.SUPPRESS)  # internal: run one leg in this process
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leg is not None:
        print(json.dumps(measure(args.model_dir, LEGS[args.leg], args)))
        return

    from rfai_cli.engine.device import on_cpu
    from rfai_cli.engine.embedded import convert_gguf, gguf_path

    results = {}
    with tempfile.TemporaryDirectory() as directory:
        convert_gguf(gguf_path(), Path(directory), dequantize=False)
        for leg in LEGS:  # each in its own process: peak memory is the leg's own
            command = [sys.executable, __file__, "--leg", leg, "--model-dir", directory]
            command += ["--prompts", str(args.prompts), "--group", str(args.group)]
            command += ["--new-tokens", str(args.new_tokens), "--runs", str(args.runs)]
            ran = subprocess.run(command, capture_output=True, text=True, check=True)
            results[leg] = json.loads(ran.stdout.strip().splitlines()[-1])
            print(f"  ({leg}: done)", flush=True)
    print(f"{'CPU' if on_cpu() else 'GPU'}; {args.prompts} prompts x {args.group} samples; medians of {args.runs} runs")
    for leg, r in results.items():
        print(
            f"  {leg:24s} generate {r['generate_s']:5.1f} s ({r['tokens_per_s']:5.0f} tokens/s)  "
            f"train {r['train_s']:5.1f} s  peak MLX {r['peak_mlx_gib']:.2f} GiB  peak RSS {r['peak_rss_gib']:.2f} GiB"
        )
    full, kept = results["float32 (dequantized)"], results["4-bit (keep_quantized)"]
    print(
        f"  4-bit vs float32: generation {full['generate_s'] / kept['generate_s']:.2f}x as fast, "
        f"training {full['train_s'] / kept['train_s']:.2f}x as fast, peak RSS {kept['peak_rss_gib'] / full['peak_rss_gib']:.2f}x"
    )


if __name__ == "__main__":
    main()
