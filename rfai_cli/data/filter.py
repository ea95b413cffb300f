"""Select rows of a JSONL dataset in one stream: score bounds, language, split, secrets, dedupe, top-k.

Kept rows are written as the exact bytes they were read as (unknown fields and key order
survive), except rows whose secrets are redacted, which are re-serialised from their original
JSON. Memory stays flat: predicates look at one row at a time, `top_k` keeps a heap of k rows,
and `dedupe` keeps one small digest per distinct code sample while it spools the kept rows to a
temporary file, then replays that file keeping each sample's best row.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import shutil
import struct
import tempfile
import textwrap
from collections import Counter
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from itertools import chain, compress
from pathlib import Path
from typing import IO, Iterable, Iterator, Literal

import numpy as np

from ..errors import InputError
from ..records import (
    MAX_DEPTH,
    MAX_LINE_BYTES,
    SCORE_FIELDS,
    STUDENT,
    Skip,
    SkipHandler,
    display_name,
    dumps,
    iter_lines,
    may_nest_too_deep,
    normalize_language,
    open_input,
    parse_line,
    skip_reporter,
    take_row,
)
from ..secrets import has_secret, redact_value
from . import columnar
from .layout import dataset_files, implied_split
from .parquet import is_parquet, parquet_rows


@dataclass
class FilterSpec:
    minimum: dict[str, float] = field(default_factory=dict)  # score field -> lowest value kept
    maximum: dict[str, float] = field(default_factory=dict)  # score field -> highest value kept
    languages: frozenset[str] = frozenset()  # empty: any
    splits: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()  # sample_source: student | teacher; empty: any
    top_k: int | None = None
    by: str = "reward"
    dedupe: bool = False
    secrets: Literal["keep", "drop", "redact"] = "keep"
    needs_code: bool = False  # keep only rows with a prompt and student code (the mlx-lm export)

    def __post_init__(self) -> None:
        self.languages = frozenset(normalize_language(name) for name in self.languages)
        for name in (*self.minimum, *self.maximum):
            if name not in SCORE_FIELDS:
                raise InputError(f"cannot bound '{name}': expected one of {', '.join(SCORE_FIELDS)}")
        if self.top_k is not None and self.top_k < 1:
            raise InputError("--top-k must be at least 1")


@dataclass
class FilterReport:
    read: int = 0  # valid rows read
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    redacted_rows: int = 0
    skipped: int = 0  # malformed lines

    def reasons(self) -> dict[str, int]:
        """Rows dropped by reason, most first (then by name: the same order whichever path counted them)."""
        return dict(sorted(self.dropped.items(), key=lambda item: (-item[1], item[0])))

    def summary(self) -> str:
        text = f"kept {self.kept} of {self.read} rows"
        if self.dropped:
            text += " (dropped: " + ", ".join(f"{n} {reason}" for reason, n in self.reasons().items()) + ")"
        if self.redacted_rows:
            text += f"; redacted secrets in {self.redacted_rows} rows"
        if self.skipped:
            text += f"; skipped {self.skipped} malformed lines"
        return text

    def add(self, other: "FilterReport") -> None:
        self.read += other.read
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.redacted_rows += other.redacted_rows
        self.skipped += other.skipped

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "kept": self.kept,
            "dropped": self.reasons(),
            "redacted_rows": self.redacted_rows,
            "skipped": self.skipped,
        }


def normalize_code(code: str) -> str:
    """Code as dedupe compares it: same line endings, no trailing spaces, no blank lines, common indent removed."""
    lines = [line.rstrip() for line in code.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return textwrap.dedent("\n".join(line for line in lines if line)).strip()


def _number(row: dict, name: str) -> float | None:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _drop_reason(row: dict, spec: FilterSpec, default_split: str | None) -> str | None:
    for name, bound in spec.minimum.items():
        value = _number(row, name)
        if value is None or value < bound:
            return f"by --min-{name.replace('_', '-')}"
    for name, bound in spec.maximum.items():
        value = _number(row, name)
        if value is None or value > bound:
            return f"by --max-{name.replace('_', '-')}"
    if spec.languages and row.get("language") not in spec.languages:
        return "by --language"
    # As in stats: the file's name (train.jsonl) says the split, else the row's field does.
    if spec.splits and (default_split or row.get("split")) not in spec.splits:
        return "by --split"
    if spec.sources and (row.get("sample_source") or STUDENT) not in spec.sources:  # absent or null: a student's
        return "by --sample-source"
    if spec.secrets == "drop" and has_secret(row):
        return "with secrets"
    if spec.needs_code and not (_text(row, "student_code") and _text(row, "prompt")):
        return "without a prompt and student code"
    return None


def _text(row: dict, name: str) -> bool:
    value = row.get(name)
    return isinstance(value, str) and bool(value.strip())


def _records(source: str | Path) -> Iterator[tuple[int, dict | None, str | None, bytes]]:
    """(line or row number, row or None, why not, line) of a JSONL file or a Parquet shard."""
    if is_parquet(source):
        for rows, first in parquet_rows(source):
            for offset, row in enumerate(rows):
                line = (dumps(row) + "\n").encode("utf-8")  # the row as it was, before its language is normalised
                yield first + offset, *take_row(row), line
        return
    for number, line in iter_lines(source):
        row, reason = parse_line(line)
        yield number, row, reason, line


def _selected(
    source: str | Path, spec: FilterSpec, report: FilterReport, strict: bool, on_skip: SkipHandler | None
) -> Iterator[tuple[dict, bytes]]:
    """(row, output line) for each valid row that passes the per-row tests, secrets redacted if asked."""
    name = display_name(source)
    default_split = implied_split(source)
    report_skip = skip_reporter(strict, on_skip)
    for number, row, reason, line in _records(source):
        if row is None:
            report_skip(Skip(name, number, reason))
            report.skipped += 1
            continue
        report.read += 1
        reason = _drop_reason(row, spec, default_split)
        if reason:
            report.dropped[reason] += 1
            continue
        if spec.secrets == "redact" and has_secret(row):
            # Redact the row as it was written (parse_line normalised its language).
            clean, _ = redact_value(json.loads(line))
            line = (dumps(clean) + "\n").encode("utf-8")
            report.redacted_rows += 1
        elif not line.endswith(b"\n"):
            line += b"\n"
        yield row, line


# ---------------------------------------------------------------- the fast path: select in DuckDB, copy bytes

COPY_BYTES = 8 << 20


def _fast_filter(source: str | Path, spec: FilterSpec, output: IO[bytes], report: FilterReport) -> bool:
    """DuckDB picks the rows; their lines are copied from the file's bytes as the picks arrive, and
    each block of bytes is checked (columnar.syntax_forgiven_in, MAX_DEPTH) on the way. False,
    with nothing written and nothing counted, when the fast path cannot vouch for the answer."""
    # Output that can be rewound is written straight away; a pipe waits in a spool until the end.
    target = output if _rewindable(output) else tempfile.TemporaryFile()
    start = target.tell()
    found = FilterReport()
    try:
        with closing(_picks(source, spec, found)) as picks:
            _copy_picked(source, picks, target, found)
        if target is not output:
            target.seek(0)
            shutil.copyfileobj(target, output, 1 << 20)
    except columnar.Unvouched:
        target.seek(start)
        target.truncate()
        return False
    finally:
        if target is not output:
            target.close()
    report.add(found)
    return True


def _rewindable(output: IO[bytes]) -> bool:
    try:
        return output.seekable()
    except (AttributeError, ValueError, OSError):
        return False


def _picks(source: str | Path, spec: FilterSpec, found: FilterReport) -> Iterator[np.ndarray]:
    """Per DuckDB batch of rows (in file order), which ones `spec` keeps; read and dropped rows counted into `found`."""
    fields = ("language", "split", "sample_source")
    columns = {name: columnar.score_column(name) for name in SCORE_FIELDS}
    columns.update({f"label {name}": columnar.label_expression(name) for name in fields})
    default_split = implied_split(source)
    with closing(columnar.read_batches(source, columns, scan_bytes=False)) as batches:
        for batch in batches:
            reasons, tests = _first_failed(batch, spec, default_split)
            counts = np.bincount(reasons, minlength=len(tests) + 1)
            for index, label in enumerate(tests, start=1):
                if counts[index]:
                    found.dropped[label] += int(counts[index])
            found.read += batch.num_rows
            yield reasons == 0


def _copy_picked(source: str | Path, picks: Iterator[np.ndarray], output: IO[bytes], found: FilterReport) -> None:
    pending = np.zeros(0, dtype=bool)
    with columnar.SyntaxChecks() as checks:
        for lines in _line_batches(source, checks):
            # (A line too deep to be vouched for is longer than 2 x MAX_DEPTH; shorter, DuckDB refuses it.)
            if max(map(len, lines), default=0) > 2 * MAX_DEPTH and any(map(may_nest_too_deep, lines)):
                raise columnar.Unvouched("a line that may nest too deep")
            while len(pending) < len(lines):
                more = next(picks, None)
                if more is None:
                    raise columnar.Unvouched("fewer rows than lines")
                pending = np.concatenate([pending, more])
            kept = list(compress(lines, pending[: len(lines)]))
            pending = pending[len(lines) :]
            if kept:
                output.write(b"\n".join(kept) + b"\n")
                found.kept += len(kept)
    if len(pending) or next(picks, None) is not None:
        raise columnar.Unvouched("more rows than lines")


def _line_batches(source: str | Path, checks: "columnar.SyntaxChecks") -> Iterator[list[bytes]]:
    """The file's non-blank lines (as DuckDB counts rows), a few MiB at a time, every byte handed
    to `checks` on the way. Chunks are split where they fall, and only the line cut in two is
    joined: the file's bytes are copied once (read), not twice."""
    carry = b""
    with open_input(source) as stream:
        while chunk := stream.read(COPY_BYTES):
            lines = chunk.split(b"\n")
            if carry:  # the line cut in two: checked whole (no pattern spans a line, but one could span the cut)
                lines[0] = carry + lines[0]
                checks.submit(lines[0])
            checks.submit(chunk)  # in a thread, while the lines are copied
            carry = lines.pop()
            if len(carry) > MAX_LINE_BYTES:  # the careful path reports it (DuckDB refuses it too)
                raise columnar.Unvouched("a line too long")
            # isspace: the bytes that strip() drops (a blank line), without copying the line
            yield [line for line in lines if line and not line.isspace()]
    if carry and not carry.isspace():
        yield [carry]


def _first_failed(batch, spec: FilterSpec, default_split: str | None) -> tuple[np.ndarray, list[str]]:
    """Per row, 0 if kept, else 1 + the index of the first test it fails, in _drop_reason's order."""
    reasons = np.zeros(batch.num_rows, dtype=np.int8)
    tests: list[str] = []

    def drop(failed: np.ndarray, label: str) -> None:
        tests.append(label)
        reasons[(reasons == 0) & failed] = len(tests)

    for name, bound in spec.minimum.items():
        drop(~(_values(batch, name) >= bound), f"by --min-{name.replace('_', '-')}")
    for name, bound in spec.maximum.items():
        drop(~(_values(batch, name) <= bound), f"by --max-{name.replace('_', '-')}")
    if spec.languages:
        drop(~_member(batch.column("label language"), spec.languages, normalize_language), "by --language")
    if spec.splits:
        if default_split:  # as in the careful path, the file's name says the split
            drop(np.full(batch.num_rows, default_split not in spec.splits), "by --split")
        else:
            drop(~_member(batch.column("label split"), spec.splits, lambda value: value), "by --split")
    if spec.sources:
        label = batch.column("label sample_source")
        drop(~_member(label, spec.sources, lambda value: value, absent=STUDENT), "by --sample-source")
    return reasons, tests


def _values(batch, name: str) -> np.ndarray:
    return columnar.numbers(batch.column(name))  # NaN (absent) fails every bound


def _member(labels, allowed: frozenset[str], normalise, absent: str | None = None) -> np.ndarray:
    """Per row: is its label (normalised) one of `allowed`; a missing label counts as `absent`."""
    codes, values = columnar.encoded(labels)
    return np.array([normalise(value) in allowed for value in values] + [absent in allowed])[codes]


DEDUPE_PARTITIONS = 64
_SAMPLE = np.dtype([("key", "<u8", 2), ("reward", "<f8"), ("index", "<i8")])  # a sample's record, as read back
_SAMPLE_RECORD = struct.Struct("<16sdq")  # ... and as written


def _deduplicated(rows: Iterator[tuple[dict, bytes]], report: FilterReport) -> Iterator[tuple[dict, bytes]]:
    """Keep, per language and normalised student code, the row with the highest reward (the first on ties).

    Rows without student code are all kept. The rows wait in a temporary file, and each sample's
    (digest, reward, row) record in one of DEDUPE_PARTITIONS others, chosen by its digest; the
    best of each sample is then found one partition at a time. Memory holds one byte per row and
    one partition's records: about 32 bytes x rows / 64, whatever the number of distinct samples.
    """
    keep = bytearray()
    with tempfile.TemporaryFile() as spool, ExitStack() as stack:
        partitions = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(DEDUPE_PARTITIONS)]
        for index, (row, line) in enumerate(rows):
            spool.write(line)
            code = row.get("student_code")
            keep.append(not isinstance(code, str))
            if isinstance(code, str):
                key = hashlib.blake2b(
                    f"{row.get('language')}\0{normalize_code(code)}".encode(), digest_size=16
                ).digest()
                reward = _number(row, "reward")
                record = _SAMPLE_RECORD.pack(key, -math.inf if reward is None else reward, index)
                partitions[key[0] % DEDUPE_PARTITIONS].write(record)
        kept = np.frombuffer(keep, dtype=np.uint8)  # a writable view of `keep`
        for partition in partitions:
            partition.seek(0)
            samples = np.frombuffer(partition.read(), _SAMPLE)
            # Per sample: highest reward first, then the earliest row; the first of each run wins.
            order = np.lexsort((samples["index"], -samples["reward"], samples["key"][:, 1], samples["key"][:, 0]))
            keys = samples["key"][order]
            first = np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)] if len(keys) else np.zeros(0, bool)
            kept[samples["index"][order][first]] = 1
        del kept
        spool.seek(0)
        for index, line in enumerate(spool):
            if keep[index]:
                yield json.loads(line), line
            else:
                report.dropped["duplicates"] += 1


def _top(rows: Iterator[tuple[dict, bytes]], spec: FilterSpec, report: FilterReport) -> Iterator[bytes]:
    """The k rows with the highest `spec.by`, highest first, file order on ties. A heap of k
    (value, row, place) entries; the lines that enter it wait in a temporary file."""
    heap: list[tuple[float, int, int, int]] = []
    seen = 0
    with tempfile.TemporaryFile() as spool:
        for index, (row, line) in enumerate(rows):
            value = _number(row, spec.by)
            if value is None:
                report.dropped[f"without a number in '{spec.by}'"] += 1
                continue
            seen += 1
            item = (value, -index, spool.tell(), len(line))
            if len(heap) < spec.top_k:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
            else:
                continue
            spool.write(line)
        if seen > len(heap):
            report.dropped[f"outside the top {spec.top_k}"] += seen - len(heap)
        for _, _, offset, length in sorted(heap, reverse=True):
            spool.seek(offset)
            yield spool.read(length)


def filter_rows(
    source: str | Path,
    output: IO[bytes],
    spec: FilterSpec,
    *,
    strict: bool = False,
    on_skip: SkipHandler | None = None,
    careful: bool = False,
) -> FilterReport:
    """Stream the rows of `source` (a file, `-`, or a dataset directory) that `spec` keeps into
    `output` (bytes, one JSON line each). Files whose rows are chosen by scores, language and split
    alone take DuckDB's fast path unless `careful`; it gives the same bytes."""
    report = FilterReport()
    files = list(dataset_files([source]))
    if spec.top_k is None and not spec.dedupe:
        for path in files:  # each file on its own: a clean one fast, the others line by line
            fast = not careful and _fast_enough(spec) and columnar.eligible(path)
            if not (fast and _fast_filter(path, spec, output, report)):
                _write(output, (line for _, line in _selected(path, spec, report, strict, on_skip)), report)
        return report
    rows = chain.from_iterable(_selected(path, spec, report, strict, on_skip) for path in files)
    if spec.dedupe:
        rows = _deduplicated(rows, report)
    _write(output, _top(rows, spec, report) if spec.top_k is not None else (line for _, line in rows), report)
    return report


def _fast_enough(spec: FilterSpec) -> bool:
    """Choices DuckDB's columns decide alone (secrets and chat export need each row's text)."""
    return spec.secrets == "keep" and not spec.needs_code


def _write(output: IO[bytes], lines: Iterable[bytes], report: FilterReport) -> None:
    for line in lines:
        output.write(line)
        report.kept += 1
