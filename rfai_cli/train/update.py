"""One optimizer update of the policy on a sampled batch: the clipped surrogate (grpo.py), the
optional distillation term, gradient accumulation, clipping and AdamW, summed over ranks."""

from __future__ import annotations

import math

import numpy as np

from .distributed import SINGLE, World
from .grpo import LossSettings, clipped_loss


def policy_value_and_grad(model, settings: LossSettings):
    """(loss, (kl, clip fraction, log-probs, entropy)) and the gradient w.r.t. the trainable (LoRA)
    parameters. The forward pass is inside the differentiated function, and nothing is
    compiled, so the LoRA weights are never captured as constants (the two ways a trainer ends
    up learning nothing). With `old` None, the old log-probs are this pass's own, held constant:
    the same function on the same weights, so the ratio is exactly 1 without a pass of its own."""
    import mlx.core as mx
    import mlx.nn as nn

    from ..engine.logprobs import batch_logprobs

    def loss_fn(model, batch, hidden, advantages, old, ref, weights, scale, teacher=None):
        stats: dict = {}
        logp = batch_logprobs(model, batch, settings.temperature, hidden, stats)
        old = mx.stop_gradient(logp) if old is None else old
        loss, (kl, clipped) = clipped_loss(logp, old, ref, advantages, weights, scale, settings, teacher)
        return loss, (kl, clipped, old, stats["entropy"])

    return nn.value_and_grad(model, loss_fn)


def update_policy(
    model,
    optimizer,
    settings: LossSettings,
    training,
    batch,
    hidden,
    advantages,
    weights,
    scale,
    distill=None,
    world: World = SINGLE,
    teacher=None,
):
    """`num_iterations` optimizer updates on one TokenBatch, each accumulating the full batch's
    gradient over `gradient_accumulation_steps` micro-batches; a non-finite loss or gradient
    skips the update. The reference log-probs (LoRA off) are taken per micro-batch on the first
    iteration, so memory holds one micro-batch's logits at a time. `hidden` is the batch's
    `frozen_hidden` (or None). `distill`, a TokenBatch of the teachers' answers, adds
    `training.distill_weight` x their mean per-token NLL under the policy. `teacher` [batch] marks
    the teacher samples (1.0; guidance.py), None when there are none. Returns (metrics, old
    log-probs per sequence).

    On several ranks (`world`), each passes its own sequences and `scale` is the whole batch's
    normaliser: the gradients, the loss and the metrics are summed over ranks once per update,
    so every rank clips by the same global norm, takes the same skip decision and applies the
    same update. Holds the engine's generation lock: the local teacher switches LoRA off in
    place under that lock, and must not do so while a gradient is taken."""
    from ..engine.generation import GENERATION_LOCK

    with GENERATION_LOCK:
        return _update_policy(
            model, optimizer, settings, training, batch, hidden, advantages, weights, scale, distill, world, teacher
        )


def _update_policy(
    model, optimizer, settings, training, batch, hidden, advantages, weights, scale, distill, world, teacher
):
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_map

    from ..engine.logprobs import batch_logprobs, frozen_hidden, hidden_rows
    from ..engine.lora import lora_disabled

    value_and_grad = policy_value_and_grad(model, settings)
    if distill is not None:
        distill_hidden = frozen_hidden(model, distill)
        distill_value_and_grad = nn.value_and_grad(model, nll)
    size = len(batch.lengths)
    everyone = world.sum_floats(size)[0]  # sequences on all ranks: the metrics' denominator
    chunks = [c.tolist() for c in np.array_split(np.arange(size), min(training.gradient_accumulation_steps, size))]
    olds: list = [None] * len(chunks)  # the first iteration's log-probs, the ratio's denominator after it
    refs: list = [None] * len(chunks)
    totals = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0, "grad_norm": 0.0, "skipped": False}
    for _ in range(training.num_iterations):
        grads, loss, kl, clipped, entropy = None, 0.0, 0.0, 0.0, 0.0
        for k, chunk in enumerate(chunks):
            part = batch.rows(chunk)
            index, steps = mx.array(chunk), part.targets.shape[1]
            part_hidden = hidden_rows(hidden, chunk, part)
            if refs[k] is None:
                with lora_disabled(model):
                    refs[k] = mx.stop_gradient(batch_logprobs(model, part, settings.temperature, part_hidden))
            (value, (chunk_kl, chunk_clipped, olds[k], chunk_entropy)), chunk_grads = value_and_grad(
                model,
                part,
                part_hidden,
                advantages[index],
                olds[k],
                refs[k],
                weights[index, :steps],
                scale,
                None if teacher is None else teacher[index],
            )
            grads = chunk_grads if grads is None else tree_map(mx.add, grads, chunk_grads)
            mx.eval(grads, value, chunk_kl, chunk_clipped, olds[k], chunk_entropy)  # one micro-batch in memory
            loss += float(value.item())
            kl += float(chunk_kl.item()) * len(chunk) / everyone
            clipped += float(chunk_clipped.item()) * len(chunk) / everyone
            entropy += float(chunk_entropy.item()) * len(chunk) / everyone
        distill_nll = 0.0
        if distill is not None:  # each rank's mean NLL, averaged over ranks
            value, distill_grads = distill_value_and_grad(model, distill, distill_hidden)
            weight = training.distill_weight / world.size
            grads = tree_map(lambda g, d, w=weight: g + w * d, grads, distill_grads)
            mx.eval(grads, value)
            distill_nll = float(value.item()) / world.size
            loss += training.distill_weight * distill_nll
        grads = world.all_sum(grads)  # once per optimizer step
        loss, kl, clipped, entropy, distill_nll = world.sum_floats(loss, kl, clipped, entropy, distill_nll)
        if distill is not None:
            totals["distill_nll"] = distill_nll
        grads, norm = optim.clip_grad_norm(grads, training.max_grad_norm)
        norm = float(norm.item())
        if not (math.isfinite(loss) and math.isfinite(norm)):
            totals["skipped"] = True
            break
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state)
        totals.update(loss=loss, kl=kl, clip_fraction=clipped, entropy=entropy, grad_norm=norm)
    old_rows = [np.array(olds[k][j, : batch.lengths[i]]) for k, chunk in enumerate(chunks) for j, i in enumerate(chunk)]
    return totals, old_rows


def nll(model, batch, hidden):
    """The mean per-token negative log-likelihood of `batch`'s completions (the distillation term)."""
    from ..engine.logprobs import batch_logprobs

    return -batch_logprobs(model, batch, 1.0, hidden).sum() / max(sum(batch.lengths), 1)


def distillation_batch(tokenizer, sampled, max_tokens: int):
    """A TokenBatch of each task's teacher answer, written as the student is asked to answer: one
    fenced code block (at most `max_tokens` tokens); None when no teacher gave code."""
    from ..engine.logprobs import token_batch
    from .guidance import answer_ids

    prompts, answers = [], []
    for (task, _), samples, reference in zip(sampled.batch, sampled.samples, sampled.references):
        if reference.code and samples:
            prompts.append(samples[0].prompt_ids)
            answers.append(answer_ids(tokenizer, task.language, reference.code)[:max_tokens])
    return token_batch(prompts, answers) if prompts else None
