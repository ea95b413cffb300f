"""Per-token log-probs of given completions under a model: the quantity the RL step differentiates.

Sequences (prompt + completion) are right-padded into one batch and run through the model once;
with a causal model, padding at the end changes nothing before it, so no attention mask is
needed. Only completion positions are read: the prompt is masked out. The functions are plain
MLX computations, so they can sit inside `mlx.nn.value_and_grad` (policy gradient) or run
with LoRA disabled for the KL reference.
"""

from __future__ import annotations

from typing import Any, Sequence


def padded_completion_logprobs(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    temperature: float = 1.0,
):
    """(logprobs, mask), both [batch, longest completion]: logprobs[i, t] = log p(c_i[t] | p_i, c_i[:t]),
    mask[i, t] = 1.0 where t < len(c_i) (0.0 on padding, whose logprobs are meaningless).
    `temperature` divides the logits first: the distribution the samples were drawn from
    (before top-p/top-k truncation, which the policy gradient treats as part of the environment)."""
    import mlx.core as mx

    if len(prompt_ids) != len(completion_ids):
        raise ValueError("prompt_ids and completion_ids must have the same length")
    if any(not prompt for prompt in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    steps = max((len(c) for c in completion_ids), default=0)
    if steps == 0:
        empty = mx.zeros((len(completion_ids), 0))
        return empty, empty
    sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    width = max(len(s) for s in sequences)
    inputs = mx.array([s + [0] * (width - len(s)) for s in sequences])

    logits = model(inputs[:, :-1])
    if temperature != 1.0:
        logits = logits / temperature
    # log p(next token) at every position, [batch, width - 1], without a [batch, width, vocab] log-softmax.
    chosen = mx.take_along_axis(logits, inputs[:, 1:, None], axis=-1).squeeze(-1)
    token_logprobs = chosen.astype(mx.float32) - mx.logsumexp(logits.astype(mx.float32), axis=-1)

    # Completion token t of sequence i is predicted at position len(p_i) - 1 + t.
    starts = mx.array([len(p) - 1 for p in prompt_ids])[:, None]
    offsets = mx.arange(steps)[None, :]
    lengths = mx.array([len(c) for c in completion_ids])[:, None]
    positions = mx.minimum(starts + offsets, token_logprobs.shape[1] - 1)
    mask = (offsets < lengths).astype(mx.float32)
    return mx.take_along_axis(token_logprobs, positions, axis=1) * mask, mask


def completion_logprobs(
    model: Any, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]
) -> list:
    """One array per sequence with the log-prob of each completion token (len(completion_ids[i]))."""
    logprobs, _ = padded_completion_logprobs(model, prompt_ids, completion_ids)
    return [logprobs[i, : len(c)] for i, c in enumerate(completion_ids)]
