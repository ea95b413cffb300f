"""The Hub's rule for a dataset repo id (OWNER/NAME), in one place for the config loader, the card
and the upload. A leaf: it imports nothing of rfai's but the error type."""

from __future__ import annotations

from .errors import InputError


def repo_id_problem(repo_id: str) -> str | None:
    """Why the Hub would refuse `repo_id` as a dataset id (OWNER/NAME), or None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not repo_id or repo_id.count("/") != 1:
        return f"must be OWNER/NAME, got {repo_id!r}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return f"{repo_id!r} is not a valid repo name (letters, digits, '-', '_', '.')"
    return None


def check_repo_id(repo_id: str, what: str = "--repo-id") -> None:
    problem = repo_id_problem(repo_id)
    if problem:
        raise InputError(f"{what} {problem}")
