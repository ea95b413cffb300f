"""LoRA switched off in place: the KL reference policy is the same weights without the adapters.

Setting each LoRA layer's scale to 0 makes it compute exactly its base layer, so the reference
log-probs need no second copy of the model.
"""

from __future__ import annotations

import contextlib


def attach_lora(model, *, rank: int, alpha: float, dropout: float, layers: int) -> dict:
    """Freeze `model` and give its last `layers` blocks trainable LoRA adapters (every linear
    layer of those blocks). Returns the adapter_config.json that mlx-lm's `--adapter-path`
    reads back. mlx-lm multiplies the low-rank product by `scale`, which is lora_alpha / rank
    (what PEFT calls the scaling)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    parameters = {"rank": rank, "scale": alpha / rank, "dropout": dropout}
    blocks = min(layers, len(model.layers))
    model.freeze()
    linear_to_lora_layers(model, blocks, parameters)
    return {"fine_tune_type": "lora", "num_layers": blocks, "lora_parameters": parameters}


def lora_layers(model) -> list:
    """The model's LoRA layers (mlx-lm's LoRALinear, LoRASwitchLinear, LoRAEmbedding)."""
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    return [m for _, m in model.named_modules() if isinstance(m, (LoRALinear, LoRASwitchLinear, LoRAEmbedding))]


@contextlib.contextmanager
def lora_disabled(model):
    """Within the block, `model` computes as its base model (every LoRA scale is 0)."""
    layers = lora_layers(model)
    saved = [layer.scale for layer in layers]
    for layer in layers:
        layer.scale = 0.0
    try:
        yield model
    finally:
        for layer, scale in zip(layers, saved):
            layer.scale = scale
