"""The training half of an RL step: rfai's passes against three plain full passes, same batch, same run.

The peer is what an RL trainer does without rfai's shortcuts (mlx-lm-lora's GRPO does this):
a full forward pass for the old log-probs, one for the reference (LoRA off), and a forward +
backward for the policy, each computing the head at every position. rfai runs each prompt once
per group, the frozen blocks once, the head only at completion positions, takes the old
log-probs from the update's own pass and the reference per micro-batch. "rfai, whole rows" is
the same without the prompt sharing (each row runs prompt + completion). All give the same loss
and gradient norm (printed).

The batch is shaped like a step's: --sequences / --group prompts, each sampled --group times.
Also: the reference's share (rfai's policy-only time against policy + reference), and each
side's peak MLX memory. Embedded SmolLM2-135M, LoRA rank 8 on all linear layers of the last 8
blocks, float32, OpenBLAS.

    .venv/bin/python benchmarks/train_passes.py [--sequences 32] [--group 4] [--micro-batches 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace

import numpy as np

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)


def plain_step(model, prompts, completions, advantages, settings, optimizer):
    """Three full passes, logits at every position (the peer)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from rfai_cli.engine.lora import lora_disabled
    from rfai_cli.train.grpo import clipped_loss, normaliser

    def full_logprobs(model):
        sequences = [p + c for p, c in zip(prompts, completions)]
        width = max(len(s) for s in sequences)
        inputs = mx.array([s + [0] * (width - len(s)) for s in sequences])
        logits = model(inputs[:, :-1])
        chosen = mx.take_along_axis(logits, inputs[:, 1:, None], axis=-1).squeeze(-1)
        token = chosen - mx.logsumexp(logits, axis=-1)
        steps = max(len(c) for c in completions)
        positions = mx.minimum(
            mx.array([len(p) - 1 for p in prompts])[:, None] + mx.arange(steps)[None], token.shape[1] - 1
        )
        mask = (mx.arange(steps)[None] < mx.array([len(c) for c in completions])[:, None]).astype(mx.float32)
        return mx.take_along_axis(token, positions, axis=1) * mask, mask

    old, mask = full_logprobs(model)
    with lora_disabled(model):
        ref, _ = full_logprobs(model)
    old, ref = mx.stop_gradient(old), mx.stop_gradient(ref)
    mx.eval(old, ref)
    weights, scale = normaliser([mask], settings)

    def loss(model):
        logp, _ = full_logprobs(model)
        return clipped_loss(logp, old, ref, advantages, weights, scale, settings)

    (value, _), grads = nn.value_and_grad(model, loss)(model)
    grads, norm = optim.clip_grad_norm(grads, 1.0)
    optimizer.update(model, grads)
    mx.eval(model.trainable_parameters(), optimizer.state)
    return float(value.item()), float(norm.item())


def rfai_step(model, prompts, completions, advantages, settings, optimizer, micro_batches, share=True):
    import dataclasses

    from rfai_cli.engine.logprobs import frozen_hidden, token_batch
    from rfai_cli.train.grpo import normaliser
    from rfai_cli.train.update import update_policy

    batch = token_batch(prompts, completions)
    batch = batch if share else dataclasses.replace(batch, shared=False)
    weights, scale = normaliser([batch.mask], settings)
    training = SimpleNamespace(num_iterations=1, gradient_accumulation_steps=micro_batches, max_grad_norm=1.0)
    metrics, _ = update_policy(
        model, optimizer, settings, training, batch, frozen_hidden(model, batch), advantages, weights, scale
    )
    return metrics["loss"], metrics["grad_norm"]


def policy_only(model, prompts, completions, advantages, settings, optimizer, micro_batches):
    """rfai's passes without the reference: the frozen blocks once, then each micro-batch's
    forward + backward (what the reference's share is measured against)."""
    import mlx.core as mx
    import mlx.nn as nn

    from rfai_cli.engine.logprobs import batch_logprobs, frozen_hidden, hidden_rows, token_batch
    from rfai_cli.train.grpo import clipped_loss, normaliser

    batch = token_batch(prompts, completions)
    weights, scale = normaliser([batch.mask], settings)
    hidden = frozen_hidden(model, batch)
    for chunk in (c.tolist() for c in np.array_split(np.arange(len(prompts)), micro_batches)):
        part, index = batch.rows(chunk), mx.array(chunk)
        part_hidden = hidden_rows(hidden, chunk, part)

        def loss(model, part=part, index=index, part_hidden=part_hidden):
            logp = batch_logprobs(model, part, 1.0, part_hidden)
            steps = logp.shape[1]
            old = mx.stop_gradient(logp)
            return clipped_loss(logp, old, old, advantages[index], weights[index, :steps], scale, settings)[0]

        value, grads = nn.value_and_grad(model, loss)(model)
        mx.eval(value, grads)
    return None


def main() -> None:
    import mlx.core as mx
    import mlx.optimizers as optim

    from rfai_cli.engine.embedded import embedded_model_dir
    from rfai_cli.engine.loading import load_model
    from rfai_cli.engine.lora import attach_lora
    from rfai_cli.train.grpo import LossSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=32, help="completions per step (8 prompts x G=4)")
    parser.add_argument("--group", type=int, default=4, help="samples per prompt (G)")
    parser.add_argument("--prompt-tokens", type=int, default=180)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--micro-batches", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    loaded = load_model(str(embedded_model_dir()))
    mx.random.seed(0)
    attach_lora(loaded.model, rank=8, alpha=16, dropout=0.0, layers=8)
    model = loaded.model
    rng = np.random.default_rng(0)
    distinct = [
        [int(t) for t in rng.integers(1, 40000, args.prompt_tokens)] for _ in range(args.sequences // args.group)
    ]
    prompts = [prompt for prompt in distinct for _ in range(args.group)]
    completions = [
        [int(t) for t in rng.integers(1, 40000, int(rng.integers(args.max_new_tokens // 2, args.max_new_tokens)))]
        for _ in range(args.sequences)
    ]
    advantages = mx.array(rng.normal(size=args.sequences).astype(np.float32))
    settings = LossSettings(kl_beta=0.04, max_new_tokens=args.max_new_tokens)
    times: dict[str, list[float]] = {"plain": [], "rfai, whole rows": [], "rfai": [], "rfai policy only": []}
    peaks: dict[str, float] = {}
    answers = {}
    for _ in range(args.runs):
        for name in times:
            optimizer = optim.AdamW(learning_rate=0.0)  # lr 0: every run sees the same weights
            mx.reset_peak_memory()
            started = time.perf_counter()
            if name == "plain":
                answers[name] = plain_step(model, prompts, completions, advantages, settings, optimizer)
            elif name.startswith("rfai,"):
                answers[name] = rfai_step(
                    model, prompts, completions, advantages, settings, optimizer, args.micro_batches, share=False
                )
            elif name == "rfai":
                answers[name] = rfai_step(
                    model, prompts, completions, advantages, settings, optimizer, args.micro_batches
                )
            else:
                policy_only(model, prompts, completions, advantages, settings, optimizer, args.micro_batches)
            times[name].append(time.perf_counter() - started)
            peaks[name] = max(peaks.get(name, 0.0), mx.get_peak_memory() / 2**30)
    tokens = sum(len(p) + len(c) for p, c in zip(prompts, completions))
    print(f"{args.sequences} sequences, {tokens} tokens, {args.micro_batches} micro-batches, {args.runs} runs")
    for name, values in times.items():
        print(f"  {name:17s} median {statistics.median(values):6.1f} s   peak MLX memory {peaks[name]:.2f} GiB")
    plain, whole, ours, alone = (
        statistics.median(times[k]) for k in ("plain", "rfai, whole rows", "rfai", "rfai policy only")
    )
    print(f"  rfai vs plain: {plain / ours:.2f}x faster")
    print(f"  each prompt once vs whole rows: {whole / ours:.2f}x faster")
    print(f"  policy + reference vs policy alone: {ours / alone:.2f}x")
    print(
        f"  loss / grad norm: plain {answers['plain']}, whole rows {answers['rfai, whole rows']}, rfai {answers['rfai']}"
    )


if __name__ == "__main__":
    main()
