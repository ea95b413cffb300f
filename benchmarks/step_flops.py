"""How much arithmetic an RL step is, counted from the model's shapes and the step's tokens, and
the machine's float32 matmul peak to hold it against (used by `train_step.py`).

Counted: every matmul of the blocks (attention projections, MLP, the attention's own QK and AV
against the context each token sees) and of the head, two FLOPs per multiply-add. Not counted:
norms, activations, softmax, RoPE (a few percent). Training: the frozen blocks once over the
step's tokens (each prompt once per group), the LoRA blocks four times (reference forward,
policy forward, backward at twice the forward), the head four times at completion positions.
Generation: each prompt's prefill once, then every sample's tokens through all blocks and the
head.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Shapes:
    layers: int
    hidden: int
    attention: int  # query heads x head dim
    kv: int  # key/value heads x head dim
    ffn: int
    vocab: int

    @classmethod
    def of(cls, model_dir: Path) -> "Shapes":
        config = json.loads((model_dir / "config.json").read_text())
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        return cls(
            config["num_hidden_layers"],
            config["hidden_size"],
            heads * head_dim,
            config.get("num_key_value_heads", heads) * head_dim,
            config["intermediate_size"],
            config["vocab_size"],
        )

    def block(self, tokens: float, context: float) -> float:
        """FLOPs of one block's forward over `tokens` tokens that each attend to `context` tokens."""
        projections = 2 * self.hidden * (2 * self.attention + 2 * self.kv) + 2 * 3 * self.hidden * self.ffn
        return tokens * (projections + 2 * 2 * self.attention * context)

    def head(self, positions: float) -> float:
        return positions * 2 * self.hidden * self.vocab


def step_flops(shapes: Shapes, prompts: list[int], samples: int, completion: float, lora_layers: int) -> dict:
    """{"generate": FLOPs, "train": FLOPs} of one step: `prompts` the groups' prompt lengths,
    `samples` the sequences trained (students and joined teachers), `completion` their mean length."""
    group = samples / len(prompts)
    prefill = sum(shapes.block(p, p / 2) for p in prompts) * shapes.layers
    decode = sum(shapes.block(group * completion, p + completion / 2) for p in prompts) * shapes.layers
    generate = prefill + decode + shapes.head(samples * completion)
    frozen = shapes.layers - lora_layers
    passes = prefill + decode  # each prompt once per group, completions against prompt + themselves
    train = passes * (frozen + 4 * lora_layers) / shapes.layers + 4 * shapes.head(samples * completion)
    return {"generate": generate, "train": train}


def matmul_peak(size: int = 1024, runs: int = 7) -> float:
    """FLOP/s of a float32 [size x size] @ [size x size] matmul in MLX, median of `runs`."""
    import mlx.core as mx

    a, b = mx.random.normal((size, size)), mx.random.normal((size, size))
    mx.eval(a @ b)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        mx.eval(a @ b)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)
