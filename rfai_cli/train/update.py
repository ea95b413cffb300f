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
    import mlx.optimizers as optim

    size = len(batch.lengths)
    chunks = [c.tolist() for c in np.array_split(np.arange(size), min(training.gradient_accumulation_steps, size))]
    passes = _MicroBatches(model, settings, batch, hidden, chunks, everyone=world.sum_floats(size)[0])
    distillation = None if distill is None else _Distillation(model, distill, training.distill_weight, world.size)
    totals = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0, "grad_norm": 0.0, "skipped": False}
    for _ in range(training.num_iterations):
        grads, figures = passes.gradient(advantages, weights, scale, teacher)
        if distillation is not None:  # each rank's mean NLL, averaged over ranks
            grads, figures["distill_nll"] = distillation.add_to(grads)
            figures["loss"] += training.distill_weight * figures["distill_nll"]
        grads = world.all_sum(grads)  # once per optimizer step
        figures = dict(zip(figures, world.sum_floats(*figures.values())))
        grads, norm = optim.clip_grad_norm(grads, training.max_grad_norm)
        norm = float(norm.item())
        if distillation is not None:
            totals["distill_nll"] = figures["distill_nll"]
        if not (math.isfinite(figures["loss"]) and math.isfinite(norm)):
            totals["skipped"] = True
            break
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state)
        totals.update(loss=figures["loss"], kl=figures["kl"], clip_fraction=figures["clip_fraction"])
        totals.update(entropy=figures["entropy"], grad_norm=norm)
    return totals, passes.old_rows()


class _MicroBatches:
    """The batch's gradient, accumulated over micro-batches, one in memory at a time. The first
    pass over each keeps its reference (LoRA off) and old log-probs for the iterations after."""

    def __init__(self, model, settings, batch, hidden, chunks, everyone: float):
        self.model, self.settings, self.batch, self.hidden, self.chunks = model, settings, batch, hidden, chunks
        self.everyone = everyone  # sequences on all ranks: the metrics' denominator
        self.value_and_grad = policy_value_and_grad(model, settings)
        self.olds: list = [None] * len(chunks)  # the ratio's denominator after the first iteration
        self.refs: list = [None] * len(chunks)

    def gradient(self, advantages, weights, scale, teacher) -> tuple:
        import mlx.core as mx
        from mlx.utils import tree_map

        from ..engine.logprobs import batch_logprobs, hidden_rows
        from ..engine.lora import lora_disabled

        grads, figures = None, {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0}
        for k, chunk in enumerate(self.chunks):
            part = self.batch.rows(chunk)
            index, steps = mx.array(chunk), part.targets.shape[1]
            part_hidden = hidden_rows(self.hidden, chunk, part)
            if self.refs[k] is None:
                with lora_disabled(self.model):
                    self.refs[k] = mx.stop_gradient(
                        batch_logprobs(self.model, part, self.settings.temperature, part_hidden)
                    )
            marks = None if teacher is None else teacher[index]
            (value, (kl, clipped, self.olds[k], entropy)), chunk_grads = self.value_and_grad(
                self.model,
                part,
                part_hidden,
                advantages[index],
                self.olds[k],
                self.refs[k],
                weights[index, :steps],
                scale,
                marks,
            )
            grads = chunk_grads if grads is None else tree_map(mx.add, grads, chunk_grads)
            mx.eval(grads, value, kl, clipped, self.olds[k], entropy)  # one micro-batch in memory
            figures["loss"] += float(value.item())
            figures["kl"] += float(kl.item()) * len(chunk) / self.everyone
            figures["clip_fraction"] += float(clipped.item()) * len(chunk) / self.everyone
            figures["entropy"] += float(entropy.item()) * len(chunk) / self.everyone
        return grads, figures

    def old_rows(self) -> list:
        """The first iteration's log-probs, one array per sequence in batch order."""
        return [
            np.array(self.olds[k][j, : self.batch.lengths[i]])
            for k, chunk in enumerate(self.chunks)
            for j, i in enumerate(chunk)
        ]


class _Distillation:
    """`distill_weight` x the mean per-token NLL of the teachers' answers, averaged over `ranks`,
    added to a gradient."""

    def __init__(self, model, distill, distill_weight: float, ranks: int):
        import mlx.nn as nn

        from ..engine.logprobs import frozen_hidden

        self.model, self.distill, self.ranks = model, distill, ranks
        self.weight = distill_weight / ranks
        self.hidden = frozen_hidden(model, distill)
        self.value_and_grad = nn.value_and_grad(model, nll)

    def add_to(self, grads) -> tuple:
        """(the gradient with this rank's share of the term added, this rank's share of the NLL)."""
        import mlx.core as mx
        from mlx.utils import tree_map

        value, distill_grads = self.value_and_grad(self.model, self.distill, self.hidden)
        grads = tree_map(lambda g, d: g + self.weight * d, grads, distill_grads)
        mx.eval(grads, value)
        return grads, float(value.item()) / self.ranks


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
