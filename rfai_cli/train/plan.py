"""What a step depends on besides the weights: which tasks it takes, its sampling seed and its
learning rate, each a function of the settings and the step alone (so a resumed run repeats them)."""

from __future__ import annotations

import numpy as np


def learning_rate_schedule(training):
    """Linear warmup to `learning_rate`, then cosine decay over the remaining steps."""
    import mlx.optimizers as optim

    warmup = min(training.warmup_steps, training.max_steps - 1)
    decay = optim.cosine_decay(training.learning_rate, max(1, training.max_steps - warmup))
    if warmup <= 0:
        return decay
    first = training.learning_rate / (warmup + 1)  # the first update already learns
    return optim.join_schedules([optim.linear_schedule(first, training.learning_rate, warmup), decay], [warmup])


def step_seed(seed: int, step: int) -> int:
    """The random seed of one step: each step's sampling depends on nothing but (seed, step)."""
    return (seed * 1_000_003 + step) % (2**31)


def rank_seed(seed: int, rank: int) -> int:
    """Each rank samples with its own key; rank 0's is the single-process one."""
    return (seed + rank * 7_919_993) % (2**31)


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    return list(np.random.default_rng([seed, epoch]).permutation(count))


def next_batch(state, task_count: int, training) -> list[int] | None:
    """The indices of the next batch's tasks from the data cursor in `state` (a TrainState),
    moving to the next epoch when this one's remainder does not fill a batch; None after the
    last epoch."""
    while state.epoch < training.epochs:
        order = epoch_order(task_count, training.seed, state.epoch)
        picked = order[state.position : state.position + training.batch_size]
        if len(picked) == training.batch_size:
            return picked
        state.epoch, state.position = state.epoch + 1, 0
    return None
