"""`rfai card`: Write DIR/README.md, a Hugging Face dataset card."""

from __future__ import annotations

from ..errors import RfaiError


def card() -> None:
    """Write DIR/README.md, a Hugging Face dataset card."""
    raise RfaiError("rfai card: not implemented yet")
