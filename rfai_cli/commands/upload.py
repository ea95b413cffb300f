"""`rfai upload`: Publish the dataset splits to the Hugging Face Hub."""

from __future__ import annotations

from ..errors import RfaiError


def upload() -> None:
    """Publish the dataset splits to the Hugging Face Hub."""
    raise RfaiError("rfai upload: not implemented yet")
