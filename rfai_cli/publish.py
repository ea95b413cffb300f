"""The end of a run that made a dataset (collect and train alike): its card, and its upload when
the config asks for one (`huggingface.upload_datasets` with a `dataset_repo_id`, as the seed
guide says). What the upload needs is checked when the run starts, not after its last step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config
from .errors import RfaiError

if TYPE_CHECKING:
    from .data.hub import UploadResult


def check_publishing(config: Config) -> None:
    """Before any work: a configured upload has a token the Hub accepts, with write access to the
    repo (RfaiError, one line, otherwise). The config loader has already refused an upload without
    a repo id."""
    hf = config.huggingface
    if hf.upload_datasets:
        from .data.hub import check_write_access

        check_write_access(hf.dataset_repo_id, private=hf.private)


def publish(config: Config, dataset_dir: Path) -> UploadResult | None:
    """Write the card, then upload if configured and return what was uploaded. A failed upload
    loses nothing: the RfaiError names the command that retries it."""
    from .data.card import write_card

    hf = config.huggingface
    write_card(dataset_dir, repo_id=hf.dataset_repo_id, config=config)
    if not hf.upload_datasets:
        return None
    from .data.hub import upload_dataset

    try:
        return upload_dataset(dataset_dir, hf.dataset_repo_id, private=hf.private, config=config)
    except RfaiError as exc:
        raise RfaiError(
            f"upload failed ({exc}); everything is saved locally: retry with "
            f"rfai upload --repo-id {hf.dataset_repo_id} --dataset-dir {dataset_dir}"
        ) from None


def upload_summary(result: UploadResult) -> str:
    """One line for the end of a run: where the data went, at which commit."""
    if not result.changed:
        return f"{result.repo_id} was already up to date at {result.commit[:7]}"
    return f"uploaded to {result.url} (commit {result.commit[:7]})"
