"""Generation throughput: rfai's batched sampling vs a loop of `mlx_lm.generate`, same run.

The job: 8 coding prompts x G=8 samples x up to 128 new tokens on the embedded
SmolLM2-135M-Instruct, sampling with the config defaults (temperature 0.8, top-p 0.95).
rfai decodes all 64 samples together (one shared prefill per prompt); `mlx_lm.batch_generate`
decodes the 64 as a batch of its own (the prompt repeated G times, each prefilled, the whole
batch in flight); the baseline generates one completion at a time with `mlx_lm.generate`, as a
straightforward script would. A loop's
rate does not depend on how many completions it runs, so it is timed on `--loop-completions`
of them (one per prompt by default) to keep the run short. When torch is installed, the same
job also runs through transformers' batched `generate` on CPU as the peer figure.

    .venv/bin/python benchmarks/generation.py [--runs 3] [--loop-completions 8] [--peer-runs 1]

Prints medians over `--runs` (`--peer-runs` for the slow torch peer) for completions/s and
generated tokens/s, and the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import rfai_cli.engine  # noqa: F401  (first: preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.blas import openblas_library
from rfai_cli.engine.generation import SamplingSettings, chat_prompt, generate_samples
from rfai_cli.engine.loading import load_model

TASKS = [
    "Write a function that reverses a string.",
    "Write a function that returns the n-th Fibonacci number.",
    "Write a function that checks whether a number is prime.",
    "Write a function that merges two sorted lists into one sorted list.",
    "Write a class that implements a stack with push, pop and peek.",
    "Write a function that counts how often each word occurs in a text.",
    "Write a function that computes the greatest common divisor of two integers.",
    "Write a function that flattens an arbitrarily nested list.",
]
SAMPLES = 8
# Raw decoding throughput: every sample runs its full 128 tokens on both paths.
SETTINGS = SamplingSettings(temperature=0.8, top_p=0.95, top_k=0, max_new_tokens=128, stop_after_code_block=False)


def rfai_job(loaded, prompts):
    """(completions, generated tokens) of one batched call."""
    groups = generate_samples(loaded, prompts, SAMPLES, SETTINGS)
    return sum(len(group) for group in groups), sum(len(s.token_ids) for group in groups for s in group)


def batch_generate_job(loaded, prompts):
    """mlx-lm's own batched generation of the same 64 samples."""
    from mlx_lm.generate import batch_generate
    from mlx_lm.sample_utils import make_sampler

    from rfai_cli.engine.generation import encode_prompt

    ids = [encode_prompt(loaded.tokenizer, prompt) for prompt in prompts for _ in range(SAMPLES)]
    out = batch_generate(
        loaded.model,
        loaded.tokenizer,
        ids,
        max_tokens=SETTINGS.max_new_tokens,
        sampler=make_sampler(SETTINGS.temperature, top_p=SETTINGS.top_p),
        completion_batch_size=len(ids),
        prefill_batch_size=len(ids),
        return_token_ids=True,
    )
    return len(ids), sum(len(tokens) for tokens in out.token_ids)


def loop_job(loaded, prompts, completions):
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    sampler = make_sampler(SETTINGS.temperature, top_p=SETTINGS.top_p)
    tokens = 0
    for index in range(completions):
        *_, last = stream_generate(  # run to the end; the last response carries the token count
            loaded.model,
            loaded.tokenizer,
            prompts[index % len(prompts)],
            max_tokens=SETTINGS.max_new_tokens,
            sampler=sampler,
        )
        tokens += last.generation_tokens
    return completions, tokens


def torch_job(model, tokenizer, prompts):
    import torch

    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=SETTINGS.temperature,
            top_p=SETTINGS.top_p,
            top_k=None,
            max_new_tokens=SETTINGS.max_new_tokens,
            num_return_sequences=SAMPLES,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = out[:, batch["input_ids"].shape[1] :]
    finished = new == tokenizer.eos_token_id
    # Tokens up to and including the first end-of-sequence token, like the other paths count.
    lengths = torch.where(finished.any(dim=1), finished.int().argmax(dim=1) + 1, new.shape[1])
    return new.shape[0], int(lengths.sum())


def load_torch(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, tokenizer


def measure(name, job, runs):
    rates = []
    for run in range(runs):
        import mlx.core as mx

        mx.random.seed(run)
        if importlib.util.find_spec("torch"):
            import torch

            torch.manual_seed(run)
        start = time.perf_counter()
        completions, tokens = job()
        elapsed = time.perf_counter() - start
        rates.append((completions / elapsed, tokens / elapsed))
        print(f"  {name} run {run + 1}: {completions} completions, {tokens} tokens in {elapsed:.1f} s", flush=True)
    return statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop-completions", type=int, default=len(TASKS))
    parser.add_argument("--peer-runs", type=int, default=1)
    args = parser.parse_args()

    loaded = load_model(None)
    prompts = [chat_prompt(loaded.tokenizer, task, "python") for task in TASKS]
    print(
        f"model {loaded.name} ({loaded.path}); OpenBLAS: {openblas_library() or 'not loaded'}; cores: {os.cpu_count()}"
    )
    print(f"job: {len(TASKS)} prompts x {SAMPLES} samples x <= {SETTINGS.max_new_tokens} tokens, {SETTINGS}")
    generate_samples(loaded, prompts[:2], 2, SamplingSettings(0.8, 0.95, 0, 8))  # warm-up

    results = {"rfai batched": measure("rfai batched", lambda: rfai_job(loaded, prompts), args.runs)}
    results["mlx_lm.batch_generate"] = measure(
        "mlx_lm.batch_generate", lambda: batch_generate_job(loaded, prompts), args.runs
    )
    results["mlx_lm.generate loop"] = measure(
        "mlx_lm.generate loop", lambda: loop_job(loaded, prompts, args.loop_completions), args.runs
    )
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        model, tokenizer = load_torch(loaded.path)
        results["transformers+torch batched"] = measure(
            "transformers+torch", lambda: torch_job(model, tokenizer, prompts), args.peer_runs
        )
    else:
        print("  (torch not installed: no transformers+torch peer figure)")

    rfai_cps, rfai_tps = results["rfai batched"]
    print(f"\n{'path':<28}{'completions/s':>15}{'tokens/s':>11}{'rfai is x (tokens/s)':>23}")
    for name, (cps, tps) in results.items():
        print(f"{name:<28}{cps:>15.3f}{tps:>11.1f}{rfai_tps / tps:>23.2f}")


if __name__ == "__main__":
    main()
