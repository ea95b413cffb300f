"""A layer's keys and values of one prompt, shared by the G completions of its group.

mlx-lm's attention layers ask a cache object for the keys and values to attend to (and the
model asks it for the mask). `PrefixCache` answers the first call of a layer (the prompt, batch
1) by keeping what it was given, and the second (the completions, batch G) by putting the
prompt's keys and values in front of each completion's: the prompt runs once per group, its keys
and values are computed once with gradients, and every completion attends to them. The result
equals running each prompt + completion as one sequence (docs/train.md, "Each prompt once").
"""

from __future__ import annotations

from typing import Any


class PrefixCache:
    def __init__(self) -> None:
        self.keys: Any = None
        self.values: Any = None
        self.offset = 0  # where the next tokens sit: 0 for the prompt, its length for the completions

    def update_and_fetch(self, keys, values):
        import mlx.core as mx

        if self.keys is None:  # the prompt
            self.keys, self.values = keys, values
            return keys, values
        rows = keys.shape[0]
        return (
            mx.concatenate([mx.broadcast_to(self.keys, (rows, *self.keys.shape[1:])), keys], axis=2),
            mx.concatenate([mx.broadcast_to(self.values, (rows, *self.values.shape[1:])), values], axis=2),
        )

    def make_mask(self, length: int, return_array: bool = False, window_size: int | None = None):
        from mlx_lm.models.base import create_causal_mask

        if self.offset == 0 and not return_array and not (window_size and length > window_size):
            return "causal" if length > 1 else None
        return create_causal_mask(length, self.offset, window_size=window_size)
