"""The trainer's shortcuts through the model give the plain forward pass's log-probs: each prompt
once per group, the frozen blocks computed once, the head only at completion positions,
micro-batches cut from a batch."""

from __future__ import annotations

import numpy as np
import pytest

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.loading import load_model
from rfai_cli.engine.logprobs import SharedHidden, batch_logprobs, frozen_hidden, shortcut_notice, token_batch
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
    assert "cannot be stood in for" in shortcut_notice(model) and shortcut_notice(inner) is None
    assert_matches(batch_logprobs(model, batch), plain_logprobs(model, PROMPTS, COMPLETIONS))


TINY = dict(
    hidden_size=64,
    num_hidden_layers=4,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    vocab_size=128,
    head_dim=16,
    rope_theta=10000.0,
    max_position_embeddings=512,
    tie_word_embeddings=True,
)
ARCHITECTURES = {
    "llama": {},
    "qwen2": {},  # blocks behind a pipeline_layers property: a fresh list on every access
    "qwen3": {},
    "qwen3_moe": dict(
        num_experts=4,
        num_experts_per_tok=2,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        moe_intermediate_size=32,
        norm_topk_prob=True,
    ),
    "mistral": {},
    "mixtral": dict(num_local_experts=4, num_experts_per_tok=2),
    "phi3": {},
    # a sliding window shorter than the sequences, every other block global
    "gemma3_text": dict(sliding_window=4, sliding_window_pattern=2, query_pre_attn_scalar=16, head_dim=16),
}


def tiny_of(architecture: str, bits: int | None):
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.utils import _get_classes

    config = {**TINY, **ARCHITECTURES[architecture], "model_type": architecture}
    model_class, args_class = _get_classes(config)
    mx.random.seed(5)
    model = model_class(args_class.from_dict(config))
    if bits:
        nn.quantize(model, group_size=32, bits=bits)
    model.freeze()
    return model


@pytest.mark.parametrize(
    ("architecture", "bits"), [(name, None) for name in ARCHITECTURES] + [("llama", 4), ("qwen2", 4)]
)
def test_the_shortcuts_work_on_every_architecture_and_give_the_full_pass(architecture, bits, tmp_path):
    """Random tiny models of mlx-lm's own classes (and 4-bit ones): the fast path is taken (the
    frozen blocks' output exists) and gives the plain forward pass's log-probs with LoRA on; one
    training step moves the adapters, and mlx-lm loads the adapters rfai saves."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import load_adapters

    from rfai_cli.train.checkpoint import write_adapters
    from rfai_cli.train.grpo import LossSettings, normaliser
    from rfai_cli.train.update import update_policy

    model = tiny_of(architecture, bits)
    adapter_config = attach_lora(model, rank=4, alpha=8, dropout=0.0, layers=2)
    for layer in lora_layers(model):
        layer.lora_b = mx.random.normal(layer.lora_b.shape) * 0.05
    mx.eval(model.parameters())
    batch = token_batch(PROMPTS, COMPLETIONS)
    hidden = frozen_hidden(model, batch)
    assert hidden is not None, "the fast path was not taken"
    assert_matches(batch_logprobs(model, batch, hidden=hidden), plain_logprobs(model, PROMPTS, COMPLETIONS))
    grouped = token_batch(GROUPED_PROMPTS, GROUPED_COMPLETIONS)
    hidden = frozen_hidden(model, grouped)
    assert isinstance(hidden, SharedHidden), "each prompt was not run once per group"
    assert_matches(
        batch_logprobs(model, grouped, hidden=hidden), plain_logprobs(model, GROUPED_PROMPTS, GROUPED_COMPLETIONS)
    )
    before = {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}
    settings = LossSettings(kl_beta=0.04)
    weights, scale = normaliser([grouped.mask], settings)
    training = type("Training", (), {"num_iterations": 1, "gradient_accumulation_steps": 2, "max_grad_norm": 1.0})
    metrics, _ = update_policy(
        model, optim.Adam(learning_rate=1e-2), settings, training, grouped, hidden,
        mx.array([1.0, -1.0, 0.5, -0.5, 0.0]), weights, scale,
    )  # fmt: skip
    after = dict(tree_flatten(model.trainable_parameters()))
    assert not metrics["skipped"] and any(not np.allclose(before[k], np.array(after[k])) for k in before)
    write_adapters(tmp_path, model, adapter_config)
    fresh = tiny_of(architecture, bits)
    load_adapters(fresh, str(tmp_path))  # mlx-lm's own loader: names and shapes must fit
    loaded = dict(tree_flatten(fresh.trainable_parameters()))
    assert loaded.keys() == after.keys() and all(np.allclose(np.array(loaded[k]), np.array(after[k])) for k in after)


# --- each prompt once per group -------------------------------------------------------------------

# Two groups of different prompt lengths (the second a group of two), completions of every length.
GROUPED_PROMPTS = [[5, 9, 11, 40, 41], [5, 9, 11, 40, 41], [5, 9, 11, 40, 41], [7, 8], [7, 8]]
GROUPED_COMPLETIONS = [[12, 13, 14], [50], [60, 61, 62, 63, 64], [70, 71], [80, 81, 82, 83]]


def test_rows_that_share_a_prompt_run_it_once_and_get_the_full_pass(lora_model):
    from rfai_cli.engine.logprobs import hidden_rows

    batch = token_batch(GROUPED_PROMPTS, GROUPED_COMPLETIONS)
    assert batch.shared and [rows for _, rows in batch.groups()] == [[0, 1, 2], [3, 4]]
    hidden = frozen_hidden(lora_model, batch)
    assert isinstance(hidden, SharedHidden) and len(hidden.prompts) == 2
    expected = plain_logprobs(lora_model, GROUPED_PROMPTS, GROUPED_COMPLETIONS)
    assert_matches(batch_logprobs(lora_model, batch, hidden=hidden), expected)
    assert_matches(batch_logprobs(lora_model, batch), expected)  # from the embeddings
    with lora_disabled(lora_model):
        assert_matches(
            batch_logprobs(lora_model, batch, hidden=hidden),
            plain_logprobs(lora_model, GROUPED_PROMPTS, GROUPED_COMPLETIONS),
        )
    chunk = [4, 1, 2]  # a micro-batch that splits both groups
    part = batch.rows(chunk)
    assert_matches(
        batch_logprobs(lora_model, part, hidden=hidden_rows(hidden, chunk, part)), [expected[i] for i in chunk]
    )


def assert_close_to_1e5(actual, desired, name: str) -> None:
    """Equal to 1e-5 of the tensor's scale: float32 sums taken in another order differ by a few
    ulps of their largest terms, not of each small element."""
    scale = max(1.0, float(np.abs(desired).max()))
    assert float(np.abs(actual - desired).max()) <= 1e-5 * scale, (name, float(np.abs(actual - desired).max()), scale)


def test_one_prompt_per_group_leaves_the_loss_the_gradient_and_the_update_unchanged(lora_model):
    """float32, padding, two prompt lengths, micro-batches, two iterations: the policy loss and
    its gradient, and the parameters after `update_policy`, equal those of whole-row passes."""
    import dataclasses

    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_map

    from rfai_cli.config import TrainingSettings
    from rfai_cli.train.grpo import LossSettings
    from rfai_cli.train.update import policy_value_and_grad, update_policy

    shared = token_batch(GROUPED_PROMPTS, GROUPED_COMPLETIONS)
    whole = dataclasses.replace(shared, shared=False)
    assert isinstance(frozen_hidden(lora_model, shared), SharedHidden)  # the shared path is the one compared
    settings = LossSettings(temperature=0.7)
    advantages = mx.array([1.0, -0.5, 0.25, -1.0, 0.8])
    weights = shared.mask
    scale = float(shared.mask.sum())
    start = tree_map(lambda x: x, lora_model.trainable_parameters())

    def loss_and_grad(batch):
        lora_model.update(start)
        value_and_grad = policy_value_and_grad(lora_model, settings)
        with lora_disabled(lora_model):
            ref = mx.stop_gradient(batch_logprobs(lora_model, batch, settings.temperature))
        (loss, _), grads = value_and_grad(
            lora_model, batch, frozen_hidden(lora_model, batch), advantages, None, ref, weights, scale
        )
        mx.eval(loss, grads)
        return loss, grads

    (loss_a, grads_a), (loss_b, grads_b) = loss_and_grad(shared), loss_and_grad(whole)
    np.testing.assert_allclose(loss_a.item(), loss_b.item(), rtol=1e-5, atol=1e-5)
    flat_a, flat_b = dict(tree_flatten(grads_a)), dict(tree_flatten(grads_b))
    assert flat_a.keys() == flat_b.keys() and any(float(mx.abs(g).max()) > 0 for g in flat_a.values())
    for name, grad in flat_a.items():
        assert_close_to_1e5(np.array(grad), np.array(flat_b[name]), name)

    training = TrainingSettings(gradient_accumulation_steps=2, num_iterations=2, learning_rate=1e-2)

    def updated(batch):
        lora_model.update(start)
        optimizer = optim.SGD(learning_rate=training.learning_rate)  # Adam would magnify float noise on ~0 gradients
        metrics, _ = update_policy(
            lora_model,
            optimizer,
            settings,
            training,
            batch,
            frozen_hidden(lora_model, batch),
            advantages,
            weights,
            scale,
        )
        return metrics, dict(tree_flatten(lora_model.trainable_parameters()))

    (metrics_a, after_a), (metrics_b, after_b) = updated(shared), updated(whole)
    np.testing.assert_allclose(metrics_a["loss"], metrics_b["loss"], rtol=1e-5, atol=1e-5)
    for name, value in after_a.items():
        assert_close_to_1e5(np.array(value), np.array(after_b[name]), name)
    assert any(not np.allclose(np.array(v), np.array(dict(tree_flatten(start))[k])) for k, v in after_a.items())
