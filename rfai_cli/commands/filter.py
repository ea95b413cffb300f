"""`rfai filter`: Select rows of a dataset file by score, language, top-k; dedupe; drop secrets."""

from __future__ import annotations

from ..errors import RfaiError


def filter_rows() -> None:
    """Select rows of a dataset file by score, language, top-k; dedupe; drop secrets."""
    raise RfaiError("rfai filter: not implemented yet")
