"""The end of a run that made a dataset: its card, and its upload when the config asks for one
(`huggingface.upload_datasets` with a `dataset_repo_id`, as the seed guide says)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import Config
from .errors import RfaiError


def publish(config: Config, dataset_dir: Path, on_notice: Callable[[str], None]) -> None:
    """Write the card, then upload if configured. A failed upload loses nothing: the notice says
    which command retries it."""
    from .data.card import write_card

    repo_id = config.huggingface.dataset_repo_id
    write_card(dataset_dir, repo_id=repo_id, config=config)
    if not (config.huggingface.upload_datasets and repo_id):
        return
    from .data.hub import upload_dataset

    try:
        upload_dataset(dataset_dir, repo_id, private=config.huggingface.private, config=config)
    except RfaiError as exc:
        on_notice(f"upload failed ({exc}); retry with: rfai upload --repo-id {repo_id} --dataset-dir {dataset_dir}")
