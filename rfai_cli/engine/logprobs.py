"""Per-token log-probs of given completions under a model: the quantity the RL step differentiates.

Sequences (prompt + completion) are right-padded into one batch and run through the model once;
with a causal model, padding at the end changes nothing before it, so no attention mask is
needed. Only completion positions are read: the prompt is masked out. The functions are plain
MLX computations, so they can sit inside `mlx.nn.value_and_grad` (policy gradient) or run
with LoRA disabled for the KL reference.

Three savings make an RL step's several passes over one batch cheap (see docs/train.md):
- Each prompt runs once per group: when rows share a prompt (the G samples of a task), the
  prompt goes through the blocks alone and the completions attend to its keys and values
  (`prefix.PrefixCache`), instead of every row running prompt + completion.
- The blocks before the first LoRA layer are frozen and compute the same with LoRA on or off,
  so `frozen_hidden` runs them once per batch and every later pass (policy, reference) starts
  from their output.
- The output head, a [positions, vocabulary] matmul, runs only at completion positions: the
  hidden states are gathered there before the final norm and head.
All work by standing in for the model's blocks for the length of one call, so they need no
per-architecture code; a model that cannot take them (checked numerically, once) gets plain
full passes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class TokenBatch:
    """Prompt + completion sequences, right-padded, and where each completion token is predicted."""

    inputs: Any  # [batch, width - 1] token ids fed to the model (the last token predicts nothing)
    positions: Any  # [batch, steps]: the input position whose output predicts completion token t
    targets: Any  # [batch, steps]: the completion tokens (0 on padding)
    mask: Any  # [batch, steps]: 1.0 on completion tokens, 0.0 on padding
    widths: tuple[int, ...]  # each row's unpadded input length
    lengths: tuple[int, ...]  # each row's completion length
    prompts: tuple[tuple[int, ...], ...] = ()  # each row's prompt ids
    completions: tuple[tuple[int, ...], ...] = ()  # each row's completion ids
    shared: bool = False  # some prompt is shared by several rows: each runs once per group

    def rows(self, index: Sequence[int]) -> "TokenBatch":
        """The sub-batch of rows `index` (a micro-batch), cut to its own longest sequence."""
        import mlx.core as mx

        picked = mx.array([int(i) for i in index])
        width = max(self.widths[i] for i in index)
        steps = max(self.lengths[i] for i in index)
        return TokenBatch(
            self.inputs[picked, :width],
            self.positions[picked, :steps],
            self.targets[picked, :steps],
            self.mask[picked, :steps],
            tuple(self.widths[i] for i in index),
            tuple(self.lengths[i] for i in index),
            tuple(self.prompts[i] for i in index),
            tuple(self.completions[i] for i in index),
            self.shared,
        )

    def groups(self) -> list[tuple[tuple[int, ...], list[int]]]:
        """(prompt ids, the rows that share it) per distinct prompt, in order of first appearance."""
        rows: dict[tuple[int, ...], list[int]] = {}
        for index, prompt in enumerate(self.prompts):
            rows.setdefault(prompt, []).append(index)
        return list(rows.items())


@dataclass(frozen=True)
class SharedHidden:
    """`frozen_hidden` of a batch whose rows share prompts: each prompt's and each row's
    completion inputs' hidden states after the frozen blocks."""

    prompts: dict  # prompt ids -> [1, prompt length, dims]
    completions: Any  # [rows, longest completion - 1, dims]


def hidden_rows(hidden, index: Sequence[int], part: TokenBatch):
    """`hidden` (of a whole batch) for its sub-batch `part` = `batch.rows(index)`."""
    import mlx.core as mx

    if hidden is None:
        return None
    picked = mx.array([int(i) for i in index])
    if isinstance(hidden, SharedHidden):
        return SharedHidden(hidden.prompts, hidden.completions[picked, : max(max(part.lengths) - 1, 0)])
    return hidden[picked, : part.inputs.shape[1]]


def token_batch(prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]) -> TokenBatch:
    import mlx.core as mx

    if len(prompt_ids) != len(completion_ids):
        raise ValueError("prompt_ids and completion_ids must have the same length")
    if any(not prompt for prompt in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    steps = max((len(c) for c in completion_ids), default=0)
    sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    width = max(len(s) for s in sequences)
    padded = [s + [0] * (width - len(s)) for s in sequences]
    # Completion token t of sequence i is predicted at position len(p_i) - 1 + t (clamped on padding).
    positions = [[min(len(p) - 1 + t, width - 2) if width > 1 else 0 for t in range(steps)] for p in prompt_ids]
    targets = [list(c) + [0] * (steps - len(c)) for c in completion_ids]
    mask = [[1.0] * len(c) + [0.0] * (steps - len(c)) for c in completion_ids]
    prompts = tuple(tuple(int(t) for t in p) for p in prompt_ids)
    return TokenBatch(
        mx.array([row[:-1] for row in padded]) if width > 1 else mx.zeros((len(padded), 0), dtype=mx.int32),
        mx.array(positions, dtype=mx.int32).reshape(len(sequences), steps),
        mx.array(targets, dtype=mx.int32).reshape(len(sequences), steps),
        mx.array(mask).reshape(len(sequences), steps),
        tuple(max(len(s) - 1, 1) for s in sequences),
        tuple(len(c) for c in completion_ids),
        prompts,
        tuple(tuple(int(t) for t in c) for c in completion_ids),
        len(set(prompts)) < len(prompts),
    )


def frozen_hidden(model: Any, batch: TokenBatch):
    """The hidden states after the model's frozen leading blocks (those without trainable
    parameters), to start later `batch_logprobs` passes from: an array, or a `SharedHidden` for a
    batch whose rows share prompts; None when there are no frozen blocks, or when the model's
    blocks cannot be stood in for."""
    import mlx.core as mx

    frozen = _frozen_blocks(model)
    if frozen == 0 or batch.inputs.shape[1] == 0 or not _stand_ins_work(model):
        return None
    if _shares(model, batch):
        prompts, completions, order = {}, [], []
        width = max(max(batch.lengths) - 1, 0)
        for prompt, rows in batch.groups():
            caches = _caches(model)
            prompts[prompt] = mx.stop_gradient(_frozen_output(model, mx.array([prompt]), frozen, caches))
            _completions_follow(caches, len(prompt))
            if width:
                inputs = _completion_inputs(batch, rows, width)
                completions.append(_frozen_output(model, inputs, frozen, caches))
                order += rows
        merged = _in_row_order(completions, order) if width else mx.zeros((len(batch.lengths), 0, 1))
        return SharedHidden(prompts, mx.stop_gradient(merged))
    return mx.stop_gradient(_frozen_output(model, batch.inputs, frozen))


def _frozen_output(model: Any, inputs, frozen: int, cache=None):
    """The output of the first `frozen` blocks (lazy: the rest is never computed)."""
    captured = []

    def capture(index, layer, h, *args, **kwargs):
        if index < frozen:
            h = layer(h, *args, **kwargs)
        if index == frozen - 1:
            captured.append(h)
        return h

    with _blocks_standing_in(model, capture):
        model(inputs) if cache is None else model(inputs, cache=cache)
    return captured[0]


def batch_logprobs(model: Any, batch: TokenBatch, temperature: float = 1.0, hidden=None, stats: dict | None = None):
    """[batch, steps] log p(completion token t | prompt, earlier tokens), 0.0 on padding.

    `temperature` divides the logits first: the distribution the samples were drawn from
    (before top-p/top-k truncation, which the policy gradient treats as part of the environment).
    `hidden`, from `frozen_hidden(model, batch)`, skips the frozen blocks. With `stats`, its
    "entropy" is set to the mean per-token entropy of that distribution (held constant), from
    the same logits."""
    import mlx.core as mx

    if batch.targets.shape[1] == 0:
        return mx.zeros(batch.targets.shape)
    totals = [] if stats is not None else None
    if _shares(model, batch):
        logprobs = _shared_logprobs(model, batch, hidden, temperature, totals)
    else:
        if _stand_ins_work(model):
            logits = _completion_logits(model, batch, hidden)
        else:  # full pass, logits at every position, then the completion ones
            logits = mx.take_along_axis(model(batch.inputs), batch.positions[..., None], axis=1)
        logprobs = _scored(logits, batch.targets, batch.mask, temperature, totals)
    if stats is not None:
        stats["entropy"] = sum(totals) / mx.maximum(batch.mask.sum(), 1.0)
    return logprobs


def _scored(logits, targets, mask, temperature: float, entropies: list | None):
    """[rows, steps] log p(target) under `logits` / `temperature`, 0.0 where `mask` is 0; with
    `entropies`, the masked sum of the distribution's entropy (held constant) is appended."""
    import mlx.core as mx

    if temperature != 1.0:
        logits = logits / temperature
    # log p(token) without a [batch, steps, vocab] log-softmax: the chosen logit minus the logsumexp.
    chosen = mx.take_along_axis(logits, targets[..., None], axis=-1).squeeze(-1)
    logits = logits.astype(mx.float32)
    normaliser = mx.logsumexp(logits, axis=-1)
    if entropies is not None:
        held = mx.stop_gradient(logits)
        probabilities = mx.exp(held - mx.stop_gradient(normaliser)[..., None])
        entropy = mx.stop_gradient(normaliser) - (probabilities * held).sum(axis=-1)
        entropies.append((entropy * mask).sum())
    return (chosen.astype(mx.float32) - normaliser) * mask


def padded_completion_logprobs(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    temperature: float = 1.0,
):
    """(logprobs, mask), both [batch, longest completion]: logprobs[i, t] = log p(c_i[t] | p_i, c_i[:t]),
    mask[i, t] = 1.0 where t < len(c_i) (0.0 on padding)."""
    batch = token_batch(prompt_ids, completion_ids)
    return batch_logprobs(model, batch, temperature), batch.mask


def completion_logprobs(
    model: Any, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]]
) -> list:
    """One array per sequence with the log-prob of each completion token (len(completion_ids[i]))."""
    logprobs, _ = padded_completion_logprobs(model, prompt_ids, completion_ids)
    return [logprobs[i, : len(c)] for i, c in enumerate(completion_ids)]


def _completion_logits(model: Any, batch: TokenBatch, hidden):
    """[batch, steps, vocab]: each row's prompt + completion through the blocks, from `hidden`
    (or from the embeddings), the output head at the completion positions only."""
    return _logits_at(model, batch.inputs, batch.positions, hidden)


def _logits_at(model: Any, inputs, positions, hidden, cache=None):
    """[rows, positions, vocab]: the blocks run on `inputs` from `hidden` (or from the
    embeddings), then the last block's output is gathered at `positions` before the norm and
    head. With `cache` (one per block), attention goes through it."""
    import mlx.core as mx

    frozen = _frozen_blocks(model) if hidden is not None else 0
    last = len(model.layers) - 1

    def run(index, layer, h, *args, **kwargs):
        if index == 0 and hidden is not None:
            h = hidden  # the embeddings are never computed: nothing reads them
        if index >= frozen:
            h = layer(h, *args, **kwargs)
        if index == last:
            h = mx.take_along_axis(h, positions[..., None], axis=1)
        return h

    with _blocks_standing_in(model, run):
        return model(inputs) if cache is None else model(inputs, cache=cache)


def _shared_logprobs(model: Any, batch: TokenBatch, hidden, temperature: float, entropies: list | None):
    """`batch_logprobs` with each prompt run once for the rows that share it: the prompt's last
    position predicts every row's first completion token, and the completions (all but their
    last token) attend to the prompt's keys and values. Each group's logits are scored as they
    come, so no [batch, steps, vocabulary] array is ever assembled."""
    import mlx.core as mx

    steps = batch.targets.shape[1]
    pieces, order = [], []
    for prompt, rows in batch.groups():
        picked = mx.array(rows)
        targets, mask = batch.targets[picked], batch.mask[picked]
        caches = _caches(model)
        start = None if hidden is None else hidden.prompts[prompt]
        head = _logits_at(model, mx.array([prompt]), mx.array([[len(prompt) - 1]]), start, caches)
        _completions_follow(caches, len(prompt))
        head = mx.broadcast_to(head, (len(rows), 1, head.shape[-1]))
        parts = [_scored(head, targets[:, :1], mask[:, :1], temperature, entropies)]
        width = min(max(max(batch.lengths[r] for r in rows) - 1, 0), steps - 1)
        if width:
            start = None if hidden is None else hidden.completions[picked, :width]
            positions = mx.broadcast_to(mx.arange(width)[None], (len(rows), width))
            logits = _logits_at(model, _completion_inputs(batch, rows, width), positions, start, caches)
            parts.append(_scored(logits, targets[:, 1 : width + 1], mask[:, 1 : width + 1], temperature, entropies))
        scored = mx.concatenate(parts, axis=1)
        if scored.shape[1] < steps:  # a shorter group: padding reads 0
            scored = mx.pad(scored, [(0, 0), (0, steps - scored.shape[1])])
        pieces.append(scored)
        order += rows
    return _in_row_order(pieces, order)


def _caches(model: Any) -> list:
    from .prefix import PrefixCache

    return [PrefixCache() for _ in model.layers]


def _completions_follow(caches: list, prompt_length: int) -> None:
    """After the prompt's pass: every block's next tokens sit after the prompt (blocks skipped by
    a frozen-hidden start included, since the model reads the mask's offset from the first)."""
    for cache in caches:
        cache.offset = prompt_length


def _completion_inputs(batch: TokenBatch, rows: list[int], width: int):
    """[rows, width]: each row's completion but its last token (which predicts nothing), right-padded."""
    import mlx.core as mx

    tokens = [list(batch.completions[r][:-1])[:width] for r in rows]
    return mx.array([t + [0] * (width - len(t)) for t in tokens], dtype=mx.int32)


def _in_row_order(pieces: list, order: list[int]):
    """Per-group arrays (rows of `order`, in that order) stacked back into the batch's row order."""
    import mlx.core as mx

    stacked = mx.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
    if order == sorted(order):  # groups already in row order (as a step's batch is)
        return stacked
    inverse = [0] * len(order)
    for position, row in enumerate(order):
        inverse[row] = position
    return mx.take(stacked, mx.array(inverse), axis=0)


def _shares(model: Any, batch: TokenBatch) -> bool:
    """Whether `batch` runs each prompt once: its rows share prompts and the model takes it."""
    return batch.shared and _stand_ins_work(model) and _sharing_works(model)


def _frozen_blocks(model: Any) -> int:
    """How many leading blocks hold no trainable parameter (LoRA sits in the last ones)."""
    from mlx.utils import tree_flatten

    count = 0
    for layer in model.layers:
        if tree_flatten(layer.trainable_parameters()):
            break
        count += 1
    return count


class _StandIn:
    """Called in a block's place for one model call; everything else is the block's own."""

    def __init__(self, index: int, layer: Any, call: Callable):
        self._index, self._layer, self._call = index, layer, call

    def __getattr__(self, name: str):
        return getattr(self._layer, name)

    def __call__(self, h, *args, **kwargs):
        return self._call(self._index, self._layer, h, *args, **kwargs)


def _block_list(model: Any) -> tuple[list, int] | None:
    """(the list the forward pass takes `model.layers` from, where they start in it), or None.
    Most mlx-lm models keep their blocks in a list attribute; pipeline-parallel ones (qwen2,
    qwen3_moe, deepseek, ...) return a fresh slice of an inner module's list on every access."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, list) or not layers:
        return None
    if model.layers is layers:
        return layers, 0
    for inner in (getattr(model, "model", None), getattr(getattr(model, "language_model", None), "model", None)):
        blocks = getattr(inner, "layers", None)
        if isinstance(blocks, list) and blocks is getattr(inner, "layers", None):  # the same list each time
            start = next((i for i, block in enumerate(blocks) if block is layers[0]), None)
            if start is not None and blocks[start : start + len(layers)] == layers:
                return blocks, start
    return None


@contextlib.contextmanager
def _blocks_standing_in(model: Any, call: Callable):
    """Within the block, block i of `model` computes `call(i, block, h, *args)` instead of
    `block(h, *args)`. Callers hold the engine's generation lock (the model is shared)."""
    blocks, start = _block_list(model)
    saved = list(blocks)
    count = len(model.layers)
    blocks[start : start + count] = [_StandIn(i, layer, call) for i, layer in enumerate(saved[start : start + count])]
    try:
        yield
    finally:
        blocks[:] = saved


def shortcut_notice(model: Any) -> str | None:
    """One line for a run whose model cannot take the shortcuts, saying what it costs; else None."""
    if _stand_ins_work(model):
        return None
    return (
        f"{type(model).__module__}.{type(model).__name__}: its blocks cannot be stood in for, so every "
        "training pass runs the whole model and its output head at every position (about 1.5x the time "
        "and a third more memory than the shortcuts of docs/train.md)"
    )


_CHECKED: dict[tuple[str, int], tuple[Any, bool]] = {}  # (check, id(model)) -> (a weak reference, the answer)


def _checked_once(name: str, model: Any, check: Callable[[], bool]) -> bool:
    import weakref

    known = _CHECKED.get((name, id(model)))
    if known is None or known[0]() is not model:
        try:
            ok = check()
        except Exception:  # noqa: BLE001 - an architecture the shortcut cannot take: full passes
            ok = False
        known = _CHECKED[(name, id(model))] = (weakref.ref(model), ok)
    return known[1]


def _stand_ins_work(model: Any) -> bool:
    """Whether standing in for the blocks reaches the model's forward pass and gives its logits,
    checked once per model on a short sequence; any other model gets plain full passes."""
    import mlx.core as mx

    def check() -> bool:
        if _block_list(model) is None:
            return False
        inputs = mx.array([[1, 2, 3, 4, 5]])
        expected = model(inputs)[:, 2:4]
        return bool(mx.allclose(_logits_at(model, inputs, mx.array([[2, 3]]), None), expected, atol=1e-4).item())

    return _checked_once("stand-ins", model, check)


def _sharing_works(model: Any) -> bool:
    """Whether running a prompt once for its rows (`prefix.PrefixCache`) gives each row's own
    logits, checked once per model; a model whose attention does not go through that cache
    (state-space layers, a cache of its own kind) runs each row whole."""
    import mlx.core as mx

    def check() -> bool:
        batch = token_batch([[1, 2, 3], [1, 2, 3]], [[4, 5, 6], [7, 8]])
        expected = _scored(_completion_logits(model, batch, None), batch.targets, batch.mask, 1.0, None)
        error = mx.abs(_shared_logprobs(model, batch, None, 1.0, None) - expected).max()
        # float32 sums in another order: a few ulps of the values' scale
        return bool((error <= 1e-4 * mx.maximum(mx.abs(expected).max(), 1.0)).item())

    return _checked_once("sharing", model, check)
