"""The policy-gradient arithmetic of one RL step: group advantages and the clipped surrogate loss.

Per sequence i and completion token t (prompt and padding masked out, the end-of-sequence token
kept), with r = exp(logp - logp_old):

    token loss = -min(r * A_i, clip(r, 1 - epsilon, 1 + epsilon_high) * A_i)
                 + kl_beta * (exp(ref - logp) - (ref - logp) - 1)          # the k3 KL estimator

`loss_type` says how token losses become one number (the normalisations of the literature):
    grpo     mean over each sequence's tokens, then over the sequences (the default)
    dapo     mean over every token of the batch
    dr_grpo  sum over every token / (sequences x max_new_tokens): no length bias at all
Every normaliser is computed over the whole batch before the loss is split into micro-batches,
so gradient accumulation gives the gradient of the full batch.

A teacher sample (guidance.py) is off-policy: its tokens' loss is -f(p) * A_i with the shaped
weight f(p) = p / (p + shaping_gamma), p = exp(logp), unclipped, and it takes no KL term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

EPSILON = 1e-4  # added to a standard deviation before dividing by it


def group_advantages(rewards: Sequence[Sequence[float]], scale: str = "group") -> list[list[float]]:
    """Each reward minus its group's mean, divided by the group's std (`group`), the whole
    batch's (`batch`) or nothing (`none`). A group whose rewards are all equal gets zeros."""
    groups = [np.asarray(group, dtype=np.float64) for group in rewards]
    everything = np.concatenate(groups) if groups else np.zeros(0)
    out = []
    for group in groups:
        centred = group - group.mean() if len(group) else group
        if scale == "group":
            centred = centred / (group.std() + EPSILON)
        elif scale == "batch":
            centred = centred / (everything.std() + EPSILON)
        out.append([0.0 if abs(value) < 1e-12 else float(value) for value in centred])
    return out


def zero_variance_fraction(rewards: Sequence[Sequence[float]]) -> float:
    """The share of groups whose rewards are all equal: they teach nothing this step."""
    flat = [max(group) - min(group) < 1e-12 for group in rewards if len(group)]
    return sum(flat) / len(flat) if flat else 0.0


@dataclass(frozen=True)
class LossSettings:
    loss_type: str = "grpo"
    epsilon: float = 0.2
    epsilon_high: float = 0.2
    kl_beta: float = 0.0
    max_new_tokens: int = 256
    temperature: float = 1.0  # log-probs are computed at the sampling temperature
    shaping_gamma: float = 0.1  # the teacher samples' policy shaping (guidance.py); LUFFY's value


def normaliser(masks: Sequence[Any], settings: LossSettings, totals: tuple[float, float] | None = None):
    """(per-token weights [batch, length], their scale) so that loss = scale * sum(weights * token_loss)
    for the batch's `loss_type`; `masks` are the [batch, length] completion masks (mx arrays).
    `totals` = (sequences, completion tokens) of the whole batch when these masks are one rank's
    share of it (data parallelism): the scale is then the whole batch's."""
    import mlx.core as mx

    mask = mx.concatenate(list(masks), axis=0) if len(masks) > 1 else masks[0]
    sequences, tokens = totals if totals is not None else (mask.shape[0], float(mask.sum().item()))
    if settings.loss_type == "grpo":
        per_sequence = mx.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        return mask / per_sequence, 1.0 / sequences
    if settings.loss_type == "dapo":
        return mask, 1.0 / max(tokens, 1.0)
    return mask, 1.0 / (sequences * settings.max_new_tokens)  # dr_grpo


def adaptive_kl_beta(beta: float, kl: float, target: float, gain: float) -> float:
    """The next step's KL weight: raised when the measured KL is above `target`, lowered when
    below, by at most `gain` x 20% per step (the proportional controller of Ziegler et al. 2019)."""
    error = float(np.clip(kl / target - 1.0, -0.2, 0.2))
    return beta * (1.0 + gain * error)


def clipped_loss(logp, old, ref, advantages, weights, scale: float, settings: LossSettings, teacher=None):
    """(loss, (kl, clipped)): the weighted sum of token losses (see the module docstring), and
    the weighted mean KL and clipped fraction of the student samples for the metrics. All
    arguments are mx arrays [batch, length], `advantages` [batch]; `teacher` [batch] is 1.0 on
    teacher samples (None: there are none)."""
    import mlx.core as mx

    ratio = mx.exp(logp - old)
    advantage = advantages[:, None]
    clipped_ratio = mx.clip(ratio, 1.0 - settings.epsilon, 1.0 + settings.epsilon_high)
    surrogate = mx.minimum(ratio * advantage, clipped_ratio * advantage)
    delta = ref - logp
    kl = mx.exp(delta) - delta - 1.0
    on_policy = weights
    if teacher is not None:
        p = mx.exp(logp)
        off_policy = teacher[:, None] > 0
        surrogate = mx.where(off_policy, p / (p + settings.shaping_gamma) * advantage, surrogate)
        kl = mx.where(off_policy, 0.0, kl)
        on_policy = weights * (1.0 - teacher[:, None])
    token_loss = -surrogate
    if settings.kl_beta:
        token_loss = token_loss + settings.kl_beta * kl
    total_weight = mx.maximum(on_policy.sum(), 1e-9)
    clipped = ((ratio != clipped_ratio) & (on_policy > 0)).astype(mx.float32)
    return scale * (weights * token_loss).sum(), (
        (on_policy * kl).sum() / total_weight,
        (on_policy * clipped).sum() / total_weight,
    )
