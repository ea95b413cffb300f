"""The dataset directory: the one owner of its file names and of its run log.

    datasets/
      train.jsonl  validation.jsonl  evaluation.jsonl   (or .jsonl.gz): one file per split
      README.md                                          the dataset card (`rfai card`)
      run.json                                           {"runs": [...]}: every run that wrote here
      .rfai.lock                                         held by the run writing the directory

A run record says what produced a split's rows (models, sampling, teacher, rubric, reward, seed,
rfai version) and a fingerprint of the settings that change the rows; resume compares it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import InputError, RfaiError
from ..records import SPLITS

LOCK_FILE = ".rfai.lock"
CARD_FILE = "README.md"
RUN_FILE = "run.json"
HUB_DATASET = "hf://datasets/"  # as pandas, polars and DuckDB spell a dataset on the Hub
CURVES_FILE = "training_curves.png"  # `rfai train`'s curves, embedded in the card
REWARD_FORMULA = "min(cap, student_score / max(teacher_score, floor))"


def split_path(directory: str | Path, split: str) -> Path:
    """datasets/train.jsonl and friends: where a run writes a split."""
    if split not in SPLITS:
        raise InputError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    return Path(directory) / f"{split}.jsonl"


def split_files(directory: str | Path) -> dict[str, Path]:
    """The split files present in DIR, in split order (`.jsonl`, else `.jsonl.gz`). An empty file
    is no split: `datasets.load_dataset` fails on a split with no data ("corresponds to no data")."""
    found = {}
    for split in SPLITS:
        for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
            path = Path(directory) / name
            if path.is_file() and path.stat().st_size > 0:
                found[split] = path
                break
    return found


def implied_split(source: str | Path) -> str | None:
    """`train.jsonl` / `evaluation.jsonl.gz` / the shard `train-00000-of-00003.parquet` hold the rows of that split."""
    match = _SPLIT_FILE.fullmatch(Path(str(source)).name)
    return match.group(1) if match else None


_SPLIT_FILE = re.compile(rf"({'|'.join(SPLITS)})(?:-\d+-of-\d+)?\..+")


def dataset_files(sources: Iterable[str | Path]) -> Iterator[str | Path]:
    """The files to read for each source: a file (or `-`) as it is; a directory's split files
    (train.jsonl, ...), else its Parquet shards (data/train-00000-of-00001.parquet, as on the Hub)."""
    for source in sources:
        if str(source) == "-" or not Path(source).is_dir():
            yield source
            continue
        directory = Path(source)
        files = list(split_files(directory).values()) or sorted(
            {*directory.glob("*.parquet"), *directory.glob("data/*.parquet")}, key=_shard_order
        )
        if not files:
            raise InputError(
                f"{directory}: is a directory with no split files (train.jsonl, ...) or Parquet shards (data/*.parquet)"
            )
        yield from files


def _shard_order(path: Path) -> tuple[int, str]:
    split = implied_split(path)
    return (SPLITS.index(split) if split else len(SPLITS), path.name)


# --- the run log --------------------------------------------------------------------------------


def fingerprint_id(fingerprint: dict) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def read_runs(directory: str | Path) -> list[dict]:
    """Every run recorded in DIR/run.json, oldest first ([] when there is none). A file from
    before the log (one run as a bare object) reads as a log of one."""
    path = Path(directory) / RUN_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read the run log: {exc}") from None
    runs = data.get("runs") if isinstance(data, dict) and "runs" in data else [data]
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise InputError(f'{path}: expected {{"runs": [...]}}')
    return runs


def append_run(directory: str | Path, run: dict) -> Path:
    """Add one run to DIR/run.json (written whole, atomically): earlier runs are kept."""
    from ..output import write_text

    path = Path(directory) / RUN_FILE
    runs = read_runs(directory) + [run]
    write_text(path, json.dumps({"runs": runs}, indent=2) + "\n", make_parents=True)
    return path


def last_run(directory: str | Path, split: str) -> dict | None:
    """The newest run that wrote `split`, if the log has one."""
    return next((run for run in reversed(read_runs(directory)) if run.get("split") == split), None)


@dataclass
class RunInfo:
    """What the card shows of the newest run (every field may be missing) and how many runs
    wrote the directory."""

    run_id: str | None = None
    command: str | None = None
    split: str | None = None
    student_model: str | None = None
    teacher_model: str | None = None
    rfai_version: str | None = None
    steps: int | None = None
    rubric_weights: dict[str, float] = field(default_factory=dict)
    reward_floor: float | None = None
    reward_cap: float | None = None
    runs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def read_run_info(directory: str | Path) -> RunInfo | None:
    """The newest run of DIR/run.json as a RunInfo, None when there is none. Unknown keys land in
    `extra`; wrongly typed ones are ignored."""
    runs = read_runs(directory)
    if not runs:
        return None
    data = dict(runs[-1])
    info = RunInfo(runs=len(runs))
    for name, kind in (
        ("run_id", str),
        ("command", str),
        ("split", str),
        ("student_model", str),
        ("teacher_model", str),
        ("rfai_version", str),
        ("steps", int),
    ):
        value = data.pop(name, None)
        if isinstance(value, kind) and not isinstance(value, bool):
            setattr(info, name, value)
    reward = data.pop("reward", None)
    reward = reward if isinstance(reward, dict) else {}
    for name, key in (("reward_floor", "floor"), ("reward_cap", "cap")):
        value = reward.get(key, data.pop(name, None))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(info, name, float(value))
    weights = data.pop("rubric_weights", None)
    if isinstance(weights, dict):
        info.rubric_weights = {
            k: v for k, v in weights.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    info.extra = data
    return info


@contextmanager
def dataset_lock(directory: str | Path) -> Iterator[Path]:
    """Hold `directory` (created if missing) for one collecting or training run.

    A second run on the same directory fails at once with a one-line error instead of
    interleaving its rows with the first one's. The lock is the kernel's (flock): a run that is
    killed, even with kill -9, releases it."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: is a file, expected a dataset directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RfaiError(f"{directory}: cannot write: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RfaiError(
                f"{directory}: another rfai run is writing this dataset directory (pid {holder}); "
                "wait for it to finish or choose another output directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield directory
    finally:
        os.close(fd)
