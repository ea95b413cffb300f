"""The trainer's shortcuts through the model give the plain forward pass's log-probs: the frozen
blocks computed once, the head only at completion positions, micro-batches cut from a batch."""

from __future__ import annotations

import numpy as np
import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.logprobs import batch_logprobs, frozen_hidden, token_batch
from rfai_cli.engine.lora import attach_lora, lora_disabled, lora_layers

PROMPTS = [[5, 9, 11, 40], [7], [3, 3, 3, 3, 3, 3, 3]]
COMPLETIONS = [[12, 13], [50, 51, 52, 53, 54], [60]]


def plain_logprobs(model, prompts, completions):
    """Log-probs from one full forward pass per sequence, read at every completion token."""
    import mlx.core as mx

    out = []
    for prompt, completion in zip(prompts, completions):
        logits = model(mx.array(prompt + completion)[None, :-1])[0]
        full = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        out.append([full[len(prompt) - 1 + t, token].item() for t, token in enumerate(completion)])
    return out


@pytest.fixture
def lora_model(tiny_model_dir):
    import mlx.core as mx

    loaded = load_model(str(tiny_model_dir))
    mx.random.seed(3)
    attach_lora(loaded.model, rank=4, alpha=8, dropout=0.0, layers=1)  # the first blocks stay frozen
    for layer in lora_layers(loaded.model):  # adapters that change the output
        layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.05
    mx.eval(loaded.model.parameters())
    return loaded.model


def assert_matches(logprobs, expected):
    for row, values in enumerate(expected):
        np.testing.assert_allclose(np.array(logprobs[row, : len(values)]), values, atol=1e-5)
        assert float(np.abs(np.array(logprobs[row, len(values) :])).sum()) == 0.0  # padding reads 0


def test_starting_from_the_frozen_blocks_gives_the_full_pass_with_lora_on_and_off(lora_model):
    batch = token_batch(PROMPTS, COMPLETIONS)
    hidden = frozen_hidden(lora_model, batch)
    assert hidden is not None and hidden.shape[:2] == batch.inputs.shape
    assert_matches(batch_logprobs(lora_model, batch, hidden=hidden), plain_logprobs(lora_model, PROMPTS, COMPLETIONS))
    with lora_disabled(lora_model):
        base = plain_logprobs(lora_model, PROMPTS, COMPLETIONS)
        assert_matches(batch_logprobs(lora_model, batch, hidden=hidden), base)
    # the adapters do change the answer, so the comparison above could fail
    assert not np.allclose(base[1], plain_logprobs(lora_model, PROMPTS, COMPLETIONS)[1], atol=1e-3)


def test_a_micro_batch_is_its_rows_of_the_batch(lora_model):
    import mlx.core as mx

    batch = token_batch(PROMPTS, COMPLETIONS)
    hidden = frozen_hidden(lora_model, batch)
    part = batch.rows([2, 0])
    assert part.lengths == (1, 2) and part.targets.shape == (2, 2)
    sub_hidden = hidden[mx.array([2, 0]), : part.inputs.shape[1]]
    expected = plain_logprobs(lora_model, [PROMPTS[2], PROMPTS[0]], [COMPLETIONS[2], COMPLETIONS[0]])
    assert_matches(batch_logprobs(lora_model, part, hidden=sub_hidden), expected)


def test_a_model_whose_blocks_cannot_be_stood_in_for_gets_plain_passes(tiny_model_dir):
    """A model that hands out a copy of its block list: standing in would not reach its forward
    pass, so the shortcuts step aside and the answer is still the model's."""
    import mlx.nn as nn

    inner = load_model(str(tiny_model_dir)).model

    class CopyingLayers(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        @property
        def layers(self):
            return list(self.inner.layers)

        def __call__(self, inputs):
            return self.inner(inputs)

    model = CopyingLayers()
    model.freeze()
    batch = token_batch(PROMPTS, COMPLETIONS)
    assert frozen_hidden(model, batch) is None
    assert_matches(batch_logprobs(model, batch), plain_logprobs(model, PROMPTS, COMPLETIONS))
