"""`rfai stats`: Statistics of dataset files: scores, rewards, languages, splits."""

from __future__ import annotations

from ..errors import RfaiError


def stats() -> None:
    """Statistics of dataset files: scores, rewards, languages, splits."""
    raise RfaiError("rfai stats: not implemented yet")
