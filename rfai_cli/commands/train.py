"""`rfai train`: Run the RLAIF loop: sample, score against the teacher, update LoRA adapters."""

from __future__ import annotations

from ..errors import RfaiError


def train() -> None:
    """Run the RLAIF loop: sample, score against the teacher, update LoRA adapters."""
    raise RfaiError("rfai train: not implemented yet")
