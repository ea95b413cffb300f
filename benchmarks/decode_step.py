"""Where a decode step's time goes on the CPU: the whole step, its matmuls, and MLX's exp against a multiply.

The embedded SmolLM2-135M decodes one token for --sequences sequences with --cached tokens in a
batch KV cache (mlx-lm's BatchKVCache, as rfai's generation uses). Printed, medians of --runs:
the step, the step without the head, the head; the MLP's up projection at that batch size in
GFLOP/s against a 1024^3 matmul (the machine's peak); and exp against a multiply per element
on an array the size of one block's SiLU input and on one step's [sequences, vocabulary] logits.

    .venv/bin/python benchmarks/decode_step.py [--sequences 32] [--cached 100] [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)


def median_ms(function, runs: int) -> float:
    import mlx.core as mx

    mx.eval(function())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        mx.eval(function())
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> None:
    import mlx.core as mx
    from mlx_lm.models.cache import BatchKVCache

    from rfai_cli.engine.loading import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--cached", type=int, default=100)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    model = load_model(None).model
    batch, runs = args.sequences, args.runs
    cache = [BatchKVCache([0] * batch) for _ in model.layers]
    mx.eval(model(mx.random.randint(0, 1000, (batch, args.cached)), cache=cache))
    token = mx.random.randint(0, 1000, (batch, 1))
    # Each timed call appends one token to the cache: the step is measured at args.cached + a few.
    step = median_ms(lambda: model(token, cache=cache), runs)
    body = median_ms(lambda: model.model(token, cache=cache), runs)
    hidden = model.model(token, cache=cache)
    head = median_ms(lambda: model.model.embed_tokens.as_linear(hidden), runs)
    print(f"decode step, {batch} sequences, ~{args.cached} cached tokens: {step:.1f} ms")
    print(f"  without the head {body:.1f} ms, the head {head:.1f} ms")

    x, w = mx.random.normal((batch, 576)), mx.random.normal((1536, 576))
    big = mx.random.normal((1024, 1024))
    mx.eval(x, w, big)
    skinny = 2 * batch * 576 * 1536 / median_ms(lambda: x @ w.T, runs * 10) / 1e6
    peak = 2 * 1024**3 / median_ms(lambda: big @ big, runs) / 1e6
    print(
        f"MLP up projection [{batch} x 576] @ [576 x 1536]: {skinny:.0f} GFLOP/s, {skinny / peak:.2f}x the 1024^3 peak ({peak:.0f} GFLOP/s)"
    )

    for label, shape in (("a block's SiLU input", (batch, 1536)), ("a step's logits", (batch, 49152))):
        values = mx.random.normal(shape)
        mx.eval(values)
        exp = median_ms(lambda v=values: mx.exp(v), runs) * 1e6 / values.size
        multiply = median_ms(lambda v=values: v * v, runs) * 1e6 / values.size
        print(f"exp on {label} {shape}: {exp:.1f} ns an element, {exp / multiply:.0f}x a multiply ({multiply:.2f} ns)")


if __name__ == "__main__":
    main()
