"""`rfai score`: (Re)score rows that already hold code: the scoring core on its own."""

from __future__ import annotations

from ..errors import RfaiError


def score() -> None:
    """(Re)score rows that already hold code: the scoring core on its own."""
    raise RfaiError("rfai score: not implemented yet")
