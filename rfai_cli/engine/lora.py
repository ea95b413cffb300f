"""LoRA switched off in place: the KL reference policy is the same weights without the adapters.

Setting each LoRA layer's scale to 0 makes it compute exactly its base layer, so the reference
log-probs need no second copy of the model.
"""

from __future__ import annotations

import contextlib


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
