"""Where a run starts: a fresh checkpoint directory, or the newest checkpoint in it, checked
against this run's settings, with the dataset splits and the metrics log cut back to it (rows
written after the checkpoint are written again by the resumed run)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..errors import InputError
from . import checkpoint
from .metrics import MetricsLog


def resume_decision(trainer, resume: bool, force: bool) -> dict:
    """Rank 0's decision, as plain data every rank can be sent: {} to start afresh, {"state",
    "checkpoint"} to continue, or {"error"}. Loads the checkpoint into the trainer's model and
    optimizer, and cuts the files back to it."""
    output_dir, metrics = trainer.output_dir, MetricsLog(trainer.output_dir)
    previous = checkpoint.latest(output_dir) if resume else None
    try:
        if previous is None:
            if resume:
                raise InputError(f"{output_dir}: no checkpoint to resume from")
            if checkpoint.latest(output_dir) is not None:
                raise InputError(
                    f"{output_dir}: already holds checkpoints; pass --resume to continue, or choose another checkpoint_dir"
                )
            output_dir.mkdir(parents=True, exist_ok=True)
            metrics.clear()
            return {}
        state = checkpoint.load(previous, trainer.student.model, trainer.optimizer)
        check_same_run(state.fingerprint, trainer.prints, previous, force)
    except InputError as exc:
        return {"error": str(exc)}
    for split, size in state.dataset_bytes.items():
        cut_back(trainer.split_path(split), size)
    metrics.cut(state.step)
    return {"state": asdict(state), "checkpoint": str(previous)}


def check_same_run(was: dict, now: dict, previous: Path, force: bool) -> None:
    """Refuse to continue a checkpoint made with other settings, unless `force`."""
    from ..runs import check_same_settings

    if not force:
        remedy = "pass --force to resume anyway, or choose another checkpoint_dir"
        check_same_settings(was, now, f"{previous}: was trained with", remedy)


def cut_back(path: Path, size: int | None) -> None:
    """Rows written after the checkpoint are dropped: the resumed run writes them again."""
    if size is not None and path.exists() and path.stat().st_size > size:
        with open(path, "r+b") as handle:
            handle.truncate(size)
