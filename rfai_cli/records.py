"""The dataset record (schema v1): field types, tolerant JSONL reading, crash-safe appending.

Readers accept rows carrying any subset of the fields (a prompt file is `{prompt, language}`)
and report each malformed line as `file:line: reason` instead of crashing. Writers append whole
lines and flush, so an interrupted run never leaves half a row behind.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from .errors import InputError

SCHEMA_VERSION = 1
SPLITS = ("train", "validation", "evaluation")
STDIN = "-"

# The seed's fields, in the seed's order.
SEED_FIELDS = (
    "prompt",
    "language",
    "student_code",
    "teacher_code",
    "student_score",
    "teacher_score",
    "reward",
    "scoring_breakdown",
    "timestamp",
)

_NUMBER = (int, float)
_TEXT = (str,)
_MAPPING = (dict,)
# Expected JSON types of every known field; rows may omit any of them, and extra fields pass through.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "prompt": _TEXT,
    "language": _TEXT,
    "student_code": _TEXT,
    "teacher_code": _TEXT,
    "student_score": _NUMBER,
    "teacher_score": _NUMBER,
    "reward": _NUMBER,
    "scoring_breakdown": _MAPPING,
    "timestamp": _TEXT,
    "student_breakdown": _MAPPING,
    "teacher_breakdown": _MAPPING,
    "score_sources": _MAPPING,
    "test_results": _MAPPING,
    "split": _TEXT,
    "task_id": _TEXT,
    "sample_index": (int,),
    "step": (int,),
    "epoch": (int,),
    "advantage": _NUMBER,
    "student_model": _TEXT,
    "teacher_model": _TEXT,
    "run_id": _TEXT,
    "schema_version": (int,),
    "tests": (str, list),
    "entry_point": _TEXT,
}
SCORE_FIELDS = ("student_score", "teacher_score", "reward")

_LANGUAGE_ALIASES = {
    "c++": "cpp",
    "cxx": "cpp",
    "cc": "cpp",
    "py": "python",
    "python3": "python",
    "rs": "rust",
    "js": "javascript",
    "ts": "typescript",
    "golang": "go",
}


def normalize_language(name: str | None) -> str | None:
    """Canonical lower-case language name: `C++`, `cxx` -> `cpp`; `py` -> `python`; `rs` -> `rust`."""
    if name is None:
        return None
    key = name.strip().lower()
    return _LANGUAGE_ALIASES.get(key, key)


def utc_timestamp() -> str:
    """ISO 8601 timestamp, seconds precision, UTC."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def row_problem(row: Any) -> str | None:
    """Why `row` is not a valid record, or None. Only fields that are present are checked."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    for name, types in FIELD_TYPES.items():
        value = row.get(name)
        if value is None:
            continue
        # bool is an int subclass in Python but never a valid score or count here.
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(dict.fromkeys(_json_type_name(t) for t in types))
            return f"field '{name}' should be {expected}, got {json.dumps(value)[:40]}"
    return None


def _json_type_name(t: type) -> str:
    return {int: "a number", float: "a number", str: "a string", dict: "an object", list: "a list"}[t]


@dataclass(frozen=True)
class Skip:
    """A line that was not read as a record, and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


SkipHandler = Callable[[Skip], None]


def _warn(skip: Skip) -> None:
    print(f"warning: skipped {skip}", file=sys.stderr)


def open_input(source: str | Path) -> IO[bytes]:
    """Open a .jsonl / .jsonl.gz file, or stdin for `-`, as bytes. One-line InputError when impossible."""
    if str(source) == STDIN:
        return sys.stdin.buffer
    path = Path(source)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a .jsonl file")
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from None
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def iter_lines(source: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) pairs of a JSONL source, blank lines dropped."""
    stream = open_input(source)
    try:
        for number, line in enumerate(stream, start=1):
            if line.strip():
                yield number, line
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{source}: cannot read: {exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def parse_line(line: bytes) -> tuple[dict | None, str | None]:
    """Decode one JSONL line into a record dict, or return the reason it is not one."""
    try:
        row = json.loads(line)
    except UnicodeDecodeError:
        return None, "not UTF-8 text (binary file?)"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    problem = row_problem(row)
    if problem:
        return None, problem
    if isinstance(row.get("language"), str):
        row["language"] = normalize_language(row["language"])
    return row, None


def read_rows(
    source: str | Path,
    *,
    strict: bool = False,
    on_skip: SkipHandler | None = None,
) -> Iterator[dict]:
    """Stream the records of one JSONL source.

    A malformed line is passed to `on_skip` (default: a warning on stderr) and skipped, or,
    with `strict`, ends the read with an InputError naming file:line.
    """
    on_skip = on_skip or _warn
    name = "<stdin>" if str(source) == STDIN else str(source)
    for number, line in iter_lines(source):
        row, reason = parse_line(line)
        if row is not None:
            yield row
            continue
        skip = Skip(name, number, reason)
        if strict:
            raise InputError(str(skip))
        on_skip(skip)


def dumps(row: dict) -> str:
    """One JSONL line (no newline): UTF-8 kept readable, key order kept."""
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


class JsonlWriter:
    """Appends records as whole lines; each `write` flushes so a crash never leaves half a row.

    `path` of `-` writes to stdout. Use as a context manager.
    """

    def __init__(self, path: str | Path, *, append: bool = True, fsync: bool = False):
        self.path = path
        self._fsync = fsync
        if str(path) == STDIN:
            self._stream: IO[str] = sys.stdout
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(path, "a" if append else "w", encoding="utf-8")
            _repair_partial_last_line(self._stream, Path(path))

    def write(self, row: dict) -> None:
        self.write_many([row])

    def write_many(self, rows: Iterable[dict]) -> None:
        # Build the whole batch first so one write call carries only complete lines.
        text = "".join(dumps(row) + "\n" for row in rows)
        if not text:
            return
        self._stream.write(text)
        self._stream.flush()
        if self._fsync and self._stream is not sys.stdout:
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _repair_partial_last_line(stream: io.TextIOBase, path: Path) -> None:
    """If a previous process died mid-line, end that line so new rows start on a fresh one.

    The broken fragment then reads as one reported malformed line instead of corrupting the
    next record.
    """
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb") as existing:
        existing.seek(size - 1)
        if existing.read(1) != b"\n":
            stream.write("\n")
            stream.flush()


def new_record(**fields: Any) -> dict:
    """A schema-v1 record: the given fields, with `schema_version` and `timestamp` filled in."""
    record = {name: fields.pop(name) for name in SEED_FIELDS if name in fields}
    record.setdefault("timestamp", utc_timestamp())
    record.update(fields)
    record["schema_version"] = SCHEMA_VERSION
    if isinstance(record.get("language"), str):
        record["language"] = normalize_language(record["language"])
    return record


def split_path(directory: str | Path, split: str) -> Path:
    """datasets/train.jsonl and friends."""
    if split not in SPLITS:
        raise InputError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    return Path(directory) / f"{split}.jsonl"
