"""Checkpoints that resume exactly: adapters (mlx-lm's format), optimizer state and the run state.

    checkpoint_dir/
      checkpoint-000010/
        adapters.safetensors   adapter_config.json     what `mlx_lm.generate --adapter-path` loads
        optimizer.safetensors                           AdamW's moments and step
        state.json                                      step, data cursor, dataset byte lengths, fingerprint
      adapters.safetensors  adapter_config.json         the newest adapters, where mlx_lm.lora leaves them

A checkpoint is written into a hidden temporary directory and renamed into place, so a crash or
kill during a save leaves the previous checkpoint whole. Randomness needs no saved state: each
step reseeds from (training.seed, step).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, RfaiError

PREFIX = "checkpoint-"
TOP_LEVEL = ("adapters.safetensors", "adapter_config.json")  # the newest adapters, where mlx_lm.lora leaves them


@dataclass
class TrainState:
    """Everything besides the weights that a resumed run needs to continue where this one stopped."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch the next batch comes from
    position: int = 0  # index of the next task in that epoch's order
    dataset_bytes: dict[str, int] = field(default_factory=dict)  # split file -> its length at this step
    fingerprint: dict[str, Any] = field(default_factory=dict)
    nonfinite_in_a_row: int = 0
    kl_beta: float | None = None  # the adaptive KL controller's current weight (None: training.kl_beta)
    evaluated_at: int | None = None  # the step whose final evaluation the split files hold


def latest(directory: str | Path) -> Path | None:
    """The newest checkpoint in `directory`, if any."""
    found = sorted(p for p in Path(directory).glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX) :].isdigit())
    return found[-1] if found else None


def save(
    directory: str | Path, model: Any, optimizer: Any, adapter_config: dict, state: TrainState, keep: int | None
) -> Path:
    """Write checkpoint-STEP atomically, refresh the top-level adapters, keep the newest `keep` (None: all)."""
    from mlx.utils import tree_flatten

    directory = Path(directory)
    target = directory / f"{PREFIX}{state.step:06d}"
    staging = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for unfinished in directory.glob(f".{PREFIX}*"):  # a save that a crash or kill cut short
            shutil.rmtree(unfinished, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{PREFIX}", dir=directory))
        write_adapters(staging, model, adapter_config)
        _save_arrays(staging / "optimizer.safetensors", dict(tree_flatten(optimizer.state)))
        (staging / "state.json").write_text(_state_text(state))
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
        staging = None
        for name in TOP_LEVEL:
            shutil.copyfile(target / name, directory / f".{name}.tmp")
            os.replace(directory / f".{name}.tmp", directory / name)
    except OSError as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for name in TOP_LEVEL:
            (directory / f".{name}.tmp").unlink(missing_ok=True)
        raise RfaiError(f"{directory}: cannot write a checkpoint: {exc.strerror or exc}") from None
    for old in sorted(p for p in directory.glob(f"{PREFIX}*") if p.is_dir())[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def rewrite_state(directory: str | Path, state: TrainState) -> None:
    """Replace the state of checkpoint-STEP (state.step's, already saved) in one rename."""
    target = Path(directory) / f"{PREFIX}{state.step:06d}" / "state.json"
    staging = target.with_name(".state.json.tmp")
    try:
        staging.write_text(_state_text(state))
        os.replace(staging, target)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise RfaiError(f"{target}: cannot write the run's state: {exc.strerror or exc}") from None


def _state_text(state: TrainState) -> str:
    return json.dumps(asdict(state), indent=2) + "\n"


def write_adapters(directory: Path, model: Any, adapter_config: dict) -> None:
    from mlx.utils import tree_flatten

    _save_arrays(directory / "adapters.safetensors", dict(tree_flatten(model.trainable_parameters())))
    (directory / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")


def _save_arrays(path: Path, arrays: dict) -> None:
    """A safetensors file written by Python's own I/O: MLX's writer reports a full disk as a
    RuntimeError without errno, and says nothing at all on some devices."""
    import io

    import mlx.core as mx

    buffer = io.BytesIO()
    mx.save_safetensors(buffer, arrays)
    path.write_bytes(buffer.getvalue())


def load(checkpoint: Path, model: Any, optimizer: Any) -> TrainState:
    """Restore adapters and optimizer state from `checkpoint`; returns its TrainState."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten

    try:
        model.load_weights(str(checkpoint / "adapters.safetensors"), strict=False)
        optimizer.state = tree_unflatten(list(mx.load(str(checkpoint / "optimizer.safetensors")).items()))
        state = TrainState(**json.loads((checkpoint / "state.json").read_text()))
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{checkpoint}: not a usable checkpoint: {exc}") from None
    mx.eval(model.parameters(), optimizer.state)
    return state
