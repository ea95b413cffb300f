"""`rfai collect`: Generate and score student and teacher code over a prompt set; write dataset splits."""

from __future__ import annotations

from ..errors import RfaiError


def collect() -> None:
    """Generate and score student and teacher code over a prompt set; write dataset splits."""
    raise RfaiError("rfai collect: not implemented yet")
