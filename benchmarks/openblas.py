"""What the system OpenBLAS buys MLX on CPU: the same measurements with and without the preload.

Each configuration runs in a fresh process (the preload must happen before MLX binds its BLAS
symbols): `RFAI_OPENBLAS=0` for the wheel's bundled reference BLAS, the default for OpenBLAS.
Measured on the embedded SmolLM2-135M-Instruct in float32:

- matmul: a 512x576 @ 576x1536 float32 product (one MLP projection over a 512-token prompt);
- prefill: a forward pass over one 128-token prompt;
- decode x1: one sequence, one token per step (what `mlx_lm.generate` does);
- decode x64: 64 sequences per step (rfai's batched sampling of 8 prompts x 8 samples).

The bundled BLAS is slow enough that the whole script takes a few minutes on 2 cores.

    .venv/bin/python benchmarks/openblas.py [--repeats 3]

Prints the medians for both and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, statistics, sys, time
import rfai_cli.engine
from rfai_cli.engine.blas import openblas_library
from rfai_cli.engine.loading import load_model
import mlx.core as mx
from mlx_lm.models.cache import make_prompt_cache

repeats = int(sys.argv[1])
model = load_model(None).model

def median_s(step, setup=lambda: None):
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        state = setup()
        start = time.perf_counter()
        step(state)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])

a, b = mx.random.normal((512, 576)), mx.random.normal((576, 1536))
mx.eval(a, b)
matmul = median_s(lambda _: mx.eval(a @ b))
prompt = mx.random.randint(0, 49152, (1, 128))
prefill = median_s(lambda _: mx.eval(model(prompt)))

def decoder(batch, steps=4):
    def run(cache):
        token = mx.zeros((batch, 1), dtype=mx.int32)
        for _ in range(steps):
            token = mx.argmax(model(token, cache=cache)[:, -1:], axis=-1)
            mx.eval(token)
    return batch * steps / median_s(run, lambda: make_prompt_cache(model))

print(json.dumps({
    "library": openblas_library(),
    "matmul GFLOP/s": 2 * 512 * 576 * 1536 / matmul / 1e9,
    "prefill tokens/s": 128 / prefill,
    "decode x1 tokens/s": decoder(1),
    "decode x64 tokens/s": decoder(64),
}))
"""


def run(repeats: int, openblas: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    if not openblas:
        env["RFAI_OPENBLAS"] = "0"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(repeats)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bundled = run(args.repeats, openblas=False)
    system = run(args.repeats, openblas=True)
    if system["library"] is None:
        print("OpenBLAS not found (install libopenblas0-pthread); only the bundled BLAS was measured")
    print(f"{'measure':<22}{'bundled BLAS':>14}{'OpenBLAS':>12}{'speed-up':>10}")
    for key in (k for k in bundled if k != "library"):
        print(f"{key:<22}{bundled[key]:>14.1f}{system[key]:>12.1f}{system[key] / bundled[key]:>9.1f}x")


if __name__ == "__main__":
    main()
