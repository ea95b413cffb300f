"""The dataset record (schema v1): field types, tolerant JSONL reading, crash-safe appending.

Readers accept rows carrying any subset of the fields (a prompt file is `{prompt, language}`)
and report each malformed line as `file:line: reason` instead of crashing. Writers append whole
lines and flush, so an interrupted run never leaves half a row behind.
"""

from __future__ import annotations

import codecs
import gzip
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from .errors import InputError, RfaiError
from .output import temporary_beside

SCHEMA_VERSION = 1
MAX_LINE_BYTES = 64 << 20  # longer lines are reported as bad lines, never held in memory whole
MAX_SKIP_BYTES = 1 << 30  # a line longer than this (an endless stream) stops the read
# Deeper lines are bad lines, whatever Python's json could follow on the stack it happens to have:
# one fixed rule, which the fast paths of stats and filter can check from bracket counts.
MAX_DEPTH = 512
_TOO_LONG_MARK = b"\x00rfai: line too long"  # no JSON line can start with a NUL
TOO_LONG = _TOO_LONG_MARK + b"\n"  # what read_line returns for a line over MAX_LINE_BYTES
SPLITS = ("train", "validation", "evaluation")
STDIN = "-"


def display_name(source: str | Path) -> str:
    """How messages name a source: its path, or <stdin> for `-`."""
    return "<stdin>" if str(source) == STDIN else str(source)


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
    "sample_source": _TEXT,
    "step": (int,),
    "epoch": (int,),
    "advantage": _NUMBER,
    "student_model": _TEXT,
    "student_adapter": _TEXT,
    "teacher_model": _TEXT,
    "run_id": _TEXT,
    "schema_version": (int,),
    "tests": (str, list),
    "entry_point": _TEXT,
}
SCORE_FIELDS = ("student_score", "teacher_score", "reward")
# A row's `sample_source`: who wrote its `student_code`. The teacher's own answer is a sample of its
# group when it joins one (train/guidance.py); rows written before the field existed are students'.
STUDENT, TEACHER = "student", "teacher"
SAMPLE_SOURCES = (STUDENT, TEACHER)

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
    """Why `row` is not a valid record, or None. Only fields that are present are checked.

    A number field holding NaN or Infinity (which Python's json reads) is a malformed row for every
    command alike: no statistic, card or filter could do anything sensible with it."""
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
        if isinstance(value, float) and not math.isfinite(value):
            return f"field '{name}' should be a finite number, got {value}"
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


def skip_reporter(strict: bool, on_skip: SkipHandler | None) -> SkipHandler:
    """The one way the core deals with a malformed line: with `strict`, an InputError naming
    file:line; else the caller's `on_skip` hears of it (the core itself never prints)."""

    def report(skip: Skip) -> None:
        if strict:
            raise InputError(str(skip))
        if on_skip is not None:
            on_skip(skip)

    return report


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
    stream = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
    try:
        _skip_utf8_bom(stream, str(path))
    except BaseException:
        stream.close()
        raise
    return stream  # type: ignore[return-value]


def _skip_utf8_bom(stream, name: str) -> None:
    """Input is UTF-8, with or without a BOM (dropped here); UTF-16/32 is refused in one line."""
    try:
        head = stream.peek(4)[:4]
    except (OSError, EOFError) as exc:
        raise InputError(f"{name}: cannot read: {exc}") from None
    if head.startswith(codecs.BOM_UTF8):
        stream.read(len(codecs.BOM_UTF8))
    elif head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise InputError(
            f"{name}: not UTF-8 text (a UTF-16/32 byte-order mark); convert it, e.g. iconv -f UTF-16 -t UTF-8"
        )
    elif b"\x00" in head:
        raise InputError(f"{name}: not UTF-8 text (NUL bytes: UTF-16, UTF-32 or a binary file)")


def read_line(stream: IO[bytes], name: str, started: int = 0) -> bytes:
    """The next line (b"" at the end), at most MAX_LINE_BYTES long (`started`: bytes of it already
    read by the caller): a longer one is read past and comes back as TOO_LONG, which parse_line
    reports. A line that does not end within MAX_SKIP_BYTES (an endless stream such as /dev/zero)
    stops the read with an InputError."""
    room = MAX_LINE_BYTES - started
    line = stream.readline(room + 1)
    if len(line) <= room or line.endswith(b"\n"):
        return line
    skipped = len(line)
    while skipped < MAX_SKIP_BYTES:
        chunk = stream.readline(1 << 20)
        if not chunk or chunk.endswith(b"\n"):
            return TOO_LONG
        skipped += len(chunk)
    raise InputError(f"{name}: a line runs on for more than {MAX_SKIP_BYTES >> 30} GiB without ending; stopped reading")


def iter_lines(source: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) pairs of a JSONL source, blank lines dropped."""
    stream = open_input(source)
    name = display_name(source)
    try:
        number = 0
        while line := read_line(stream, name):
            number += 1
            if line.strip():
                yield number, line
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{source}: cannot read: {exc}") from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def iter_blocks(source: str | Path, size: int = 8 << 20) -> Iterator[bytes]:
    """Blocks of about `size` bytes of a JSONL source, each ending at a line end (or the end of the data)."""
    stream = open_input(source)
    try:
        while True:
            block = stream.read(size)
            if not block:
                return
            if not block.endswith(b"\n"):
                head = block.rfind(b"\n") + 1  # the last line started here: finish it, within the line bound
                tail = read_line(stream, display_name(source), started=len(block) - head)
                block = block[:head] + TOO_LONG if tail == TOO_LONG else block + tail
            yield block
    except (OSError, EOFError) as exc:  # includes gzip.BadGzipFile
        raise InputError(f"{source}: cannot read: {exc}") from None
    finally:
        if str(source) != STDIN:
            stream.close()


def parse_line(line: bytes) -> tuple[dict | None, str | None]:
    """Decode one JSONL line into a record dict, or return the reason it is not one."""
    if line.startswith(_TOO_LONG_MARK):
        return None, f"line longer than {MAX_LINE_BYTES >> 20} MiB"
    if may_nest_too_deep(line) and _depth(line) > MAX_DEPTH:
        return None, f"nested more than {MAX_DEPTH} levels"
    try:
        row = json.loads(line.decode("utf-8"))  # bytes would let json guess UTF-16/32
    except UnicodeDecodeError:
        return None, "not UTF-8 text (binary file?)"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:  # not past MAX_DEPTH, but called with little of the stack left
        return None, "invalid JSON: nested too deeply"
    return take_row(row)


def take_row(row: Any) -> tuple[dict | None, str | None]:
    """A decoded row as a record (its language normalised), or the reason it is not one."""
    problem = row_problem(row)
    if problem:
        return None, problem
    if isinstance(row.get("language"), str):
        row["language"] = normalize_language(row["language"])
    return row, None


def may_nest_too_deep(line: bytes) -> bool:
    """Whether a line has enough opening brackets to nest deeper than MAX_DEPTH (most lines have not)."""
    return len(line) > MAX_DEPTH and line.count(b"[") + line.count(b"{") > MAX_DEPTH


def block_may_nest_too_deep(block: bytes, ends) -> bool:
    """may_nest_too_deep for any line of a block (bytes or a memoryview; `ends`: the positions of its
    newlines, a numpy array)."""
    import numpy as np

    starts = np.r_[0, ends + 1]
    stops = np.r_[ends, len(block)]
    # Only a line with twice that many bytes can open and close that many brackets: a shorter one
    # is invalid JSON, which the fast paths' parsers refuse on their own.
    long = np.flatnonzero(stops - starts > 2 * MAX_DEPTH)
    return any(may_nest_too_deep(bytes(block[starts[i] : stops[i]])) for i in long)


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped whole) and brackets


def _depth(line: bytes) -> int:
    """How deep the line's lists and objects nest (brackets inside strings do not count)."""
    depth = deepest = 0
    for token in _TOKENS.finditer(line):
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif bracket in (b"]", b"}"):
            depth -= 1
    return deepest


def read_rows(
    source: str | Path,
    *,
    strict: bool = False,
    on_skip: SkipHandler | None = None,
) -> Iterator[dict]:
    """Stream the records of one JSONL source.

    A malformed line is passed to `on_skip` and skipped, or, with `strict`, ends the read with
    an InputError naming file:line.
    """
    report = skip_reporter(strict, on_skip)
    name = display_name(source)
    for number, line in iter_lines(source):
        row, reason = parse_line(line)
        if row is not None:
            yield row
            continue
        report(Skip(name, number, reason))


def dumps(row: dict) -> str:
    """One JSONL line (no newline): UTF-8 kept readable, key order kept."""
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


class JsonlWriter:
    """Appends records as whole lines; each `write_many` is one write, flushed, so a crash never
    leaves half a row, and a write that fails (a full disk) is cut back off the file before the
    error is raised, so what was written before stays whole.

    `path` of `-` writes to stdout; `stream` writes to an already open binary stream instead.
    With `replace`, the rows go to a new file that takes the place of `path` at the first
    write: until then (a crash, Ctrl-C, nothing to write) the old file stays as it was.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        stream: IO[bytes] | None = None,
        fsync: bool = False,
        replace: bool = False,
    ):
        self.path = path
        self._fsync = fsync
        self._owned = stream is None and str(path) != STDIN
        self._pending: Path | None = None  # with `replace`: the new file, until it takes path's place
        if stream is not None:
            self._stream = stream
        elif not self._owned:
            sys.stdout.flush()
            self._stream = sys.stdout.buffer
        else:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                if replace:
                    fd, name = temporary_beside(Path(path))
                    self._pending, self._stream = Path(name), os.fdopen(fd, "ab")
                else:
                    self._stream = open(path, "ab")
                    _repair_partial_last_line(self._stream, Path(path))
            except OSError as exc:
                raise RfaiError(f"{path}: cannot write: {exc.strerror or exc}") from None

    def write(self, row: dict) -> None:
        self.write_many([row])

    def write_many(self, rows: Iterable[dict]) -> None:
        # Build the whole batch first so one write call carries only complete lines.
        data = "".join(dumps(row) + "\n" for row in rows).encode("utf-8")
        if not data:
            return
        start = self._stream.tell() if self._owned else None
        try:
            self._stream.write(data)
            self._stream.flush()
            if self._fsync and self._owned:
                os.fsync(self._stream.fileno())
        except OSError as exc:
            if start is not None:
                self._cut_back(start)
            raise RfaiError(f"{self.path or 'output'}: cannot write: {exc.strerror or exc}") from None
        if self._pending is not None:  # the first rows are whole on disk: the new file takes over
            os.replace(self._pending, self.path)
            self._pending = None

    def _cut_back(self, size: int) -> None:
        """Drop what a failed write left after `size` bytes (the buffer too, so close() cannot re-send it)."""
        try:
            os.ftruncate(self._stream.fileno(), size)
            self._stream.close()
            self._stream = open(self._pending or self.path, "ab")
        except OSError:
            pass

    def close(self) -> None:
        if self._owned:
            try:
                self._stream.close()
            except OSError:
                pass  # a failed flush of an already reported failed write
            if self._pending is not None:
                self._pending.unlink(missing_ok=True)

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _repair_partial_last_line(stream: IO[bytes], path: Path) -> None:
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
            stream.write(b"\n")
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
