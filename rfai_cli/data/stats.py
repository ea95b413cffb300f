"""Dataset statistics in one streaming pass: counts, moments, quantiles, histograms, test pass rates.

A JSONL file is read by DuckDB (`columnar.py`, the fast path) when it can vouch that its answer is
the careful path's; otherwise, and for stdin or under `--careful`, the file is read in blocks of a
few MiB, line by line with `records.parse_line`, which reports exactly which lines are skipped and
why. Both paths feed the same vectorised accumulators, so memory stays bounded by the block size,
the number of groups and the quantile grid, whatever the file size.

Quantiles (p10, median, p90) come from a histogram of values on a fixed grid (1e-4 wide by
default): with values that have at most 4 decimals, as scores do, they equal numpy's linear
interpolation exactly; otherwise they are within half a grid cell. A grid that would exceed
`MAX_CELLS` distinct cells doubles its cell width (reported as `quantile_resolution`).
"""

from __future__ import annotations

import json
import math
from contextlib import closing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..records import (
    FIELD_TYPES,
    SCORE_FIELDS,
    TEACHER,
    Skip,
    SkipHandler,
    display_name,
    iter_blocks,
    normalize_language,
    parse_line,
    skip_reporter,
    take_row,
)
from . import columnar
from .layout import dataset_files, implied_split
from .parquet import is_parquet, parquet_rows

BLOCK_BYTES = 8 << 20
MAX_CELLS = 1 << 15
GRID_SCALE = 10_000.0  # grid cells per unit: 1e-4 resolution
HISTOGRAM_BINS = 10
MISSING = "(none)"
DEFAULT_BY = ("language", "split")
TEST_PARTS = ("student_passed", "student_total", "teacher_passed", "teacher_total")
TASK = "task_id"  # pass@k is computed over the samples of each task
SAMPLE_SOURCE = "sample_source"  # ... the student's: a teacher sample (train/guidance.py) is not one
CORRECTNESS_SOURCE = "score_sources.student.correctness"  # tests, judge, measured or unassessed
# Where tested rows' verdicts were decided: outside the sandbox (by value) or partly inside (weaker).
VERDICT_SOURCE = "score_sources.student.verdicts"
STUDENT_SOURCES = {CORRECTNESS_SOURCE: "correctness", VERDICT_SOURCE: "verdicts"}
UNASSESSED = "unassessed"
DEFAULT_PASS_AT = (1,)
# Groups no single row field names: the file a row came from, and the student as base model plus
# the adapter it was loaded with (two runs of one base model differ by their adapters).
FILE = "file"
MODEL = "model"
MODEL_PARTS = ("student_model", "student_adapter")
DERIVED_FIELDS = (FILE, MODEL)
_SKIP_EXAMPLES = 10


# ---------------------------------------------------------------- accumulators


class _Moments:
    """Count, mean, sum of squared deviations (merged with Chan's formula), min and max."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x: np.ndarray) -> None:
        n = len(x)
        if not n:
            return
        mean = float(x.mean())
        with np.errstate(over="ignore"):  # an overflowing spread is reported as None (see _tidy)
            m2 = float(((x - mean) ** 2).sum())
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    def merge(self, other: "_Moments") -> None:
        if not other.n:
            return
        total = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / total
        self.m2 += other.m2 + delta * delta * self.n * other.n / total
        self.n = total
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)


class _Grid:
    """Value counts in `1/scale`-wide cells, held densely from the lowest to the highest cell seen.

    When the cells seen would span more than MAX_CELLS, the cells double in width.
    """

    def __init__(self) -> None:
        self.scale = GRID_SCALE
        self.low = 0  # key of counts[0]; key = round(value * scale)
        self.counts = np.zeros(0, dtype=np.int64)

    def add(self, x: np.ndarray) -> None:
        if not len(x):
            return
        # Keys stay well inside int64, and exact in float64, however large the values are.
        while float(np.abs(x).max()) * self.scale > 2.0**52:
            self._coarsen()
        while True:
            keys = np.rint(x * self.scale).astype(np.int64)
            low, high = int(keys.min()), int(keys.max())
            if len(self.counts):
                low, high = min(low, self.low), max(high, self.low + len(self.counts) - 1)
            if high - low < MAX_CELLS:
                break
            self._coarsen()
        self._span(low, high)
        self.counts += np.bincount(keys - low, minlength=len(self.counts))

    def merge(self, other: "_Grid") -> None:
        while other.scale > self.scale:
            other._coarsen()
        while self.scale > other.scale:
            self._coarsen()
        if len(other.counts):
            self.add_counts(other.low + np.arange(len(other.counts)), other.counts)

    def add_counts(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Counts at cell keys of this grid's scale (another grid's cells, when merging)."""
        low, high = int(keys.min()), int(keys.max())
        if len(self.counts):
            low, high = min(low, self.low), max(high, self.low + len(self.counts) - 1)
        if high - low >= MAX_CELLS:
            self._coarsen()
            return self.add_counts(np.floor(keys / 2 + 0.5).astype(np.int64), counts)
        self._span(low, high)
        self.counts += np.bincount(keys - low, weights=counts, minlength=len(self.counts)).astype(np.int64)

    def _span(self, low: int, high: int) -> None:
        """Hold cells from `low` to `high` (which include those held already)."""
        if len(self.counts):
            before = self.low - low
            self.counts = np.pad(self.counts, (before, high - low + 1 - before - len(self.counts)))
        else:
            self.counts = np.zeros(high - low + 1, dtype=np.int64)
        self.low = low

    def _coarsen(self) -> None:
        self.scale /= 2
        if not len(self.counts):
            return
        keys = np.floor((self.low + np.arange(len(self.counts))) / 2 + 0.5).astype(np.int64)
        self.low = int(keys[0])
        self.counts = np.bincount(keys - self.low, weights=self.counts).astype(np.int64)

    def values(self) -> np.ndarray:
        return (self.low + np.arange(len(self.counts))) / self.scale

    def quantile(self, q: float) -> float:
        """numpy's default (linear) quantile of the values, read off the grid."""
        cumulative = np.cumsum(self.counts)
        n = int(cumulative[-1])
        position = (n - 1) * q
        below = math.floor(position)
        at = np.searchsorted(cumulative, [below, min(below + 1, n - 1)], side="right")
        low_value, high_value = (self.low + at) / self.scale
        return float(low_value + (position - below) * (high_value - low_value))


class _Column:
    def __init__(self) -> None:
        self.moments = _Moments()
        self.grid = _Grid()
        self.on_grid = True  # every value so far has at most 4 decimals, as scores do

    def add(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        self.moments.add(x)
        self.grid.add(x)
        self.on_grid = self.on_grid and bool((np.rint(x * GRID_SCALE) / GRID_SCALE == x).all())

    def merge(self, other: "_Column") -> None:
        self.moments.merge(other.moments)
        self.grid.merge(other.grid)
        self.on_grid = self.on_grid and other.on_grid

    def mean_and_std(self) -> tuple[float, float | None]:
        """From the grid's counts in exact integer arithmetic when every value lies on it: the
        same figures however the rows were split into batches or files (float moments differ in
        the last bits, which can flip a sixth decimal). Else from the moments."""
        m = self.moments
        if not (self.on_grid and self.grid.scale == GRID_SCALE):
            return m.mean, (math.sqrt(m.m2 / (m.n - 1)) if m.n > 1 else None)
        cells = np.flatnonzero(self.grid.counts)
        keys = [int(key) for key in self.grid.low + cells]
        counts = [int(count) for count in self.grid.counts[cells]]
        total = sum(c * k for c, k in zip(counts, keys))
        squares = sum(c * k * k for c, k in zip(counts, keys))
        scale = int(GRID_SCALE)
        mean = float(Fraction(total, m.n * scale))
        if m.n < 2:
            return mean, None
        return mean, math.sqrt(Fraction(squares * m.n - total * total, m.n * (m.n - 1) * scale * scale))

    def summary(self) -> dict[str, Any]:
        m = self.moments
        if not m.n:
            return {"count": 0}
        mean, std = self.mean_and_std()  # std: the sample std, as pandas' describe()
        return {
            "count": m.n,
            "mean": _tidy(mean),
            "std": _tidy(std),
            "min": _tidy(m.min),
            "p10": _tidy(self.grid.quantile(0.1)),
            "median": _tidy(self.grid.quantile(0.5)),
            "p90": _tidy(self.grid.quantile(0.9)),
            "max": _tidy(m.max),
        }

    def histogram(self, max_bins: int = HISTOGRAM_BINS) -> dict[str, list] | None:
        if not self.moments.n:
            return None
        # Scores live in [0, 1]: tenths. Wider ranges (rewards up to the cap, advantages) get
        # the narrowest round bin width that needs no more than `max_bins` bins.
        low = min(0.0, math.floor(self.moments.min * 10) / 10)
        high = max(1.0, self.moments.max)
        width = _bin_width(high - low, max_bins)
        bins = max(1, math.ceil((high - low) / width - 1e-9))
        top = low + bins * width
        # A value on an edge belongs to the bin it opens (0.7 to 0.7-0.8): computed edges can sit
        # a rounding error above it, so nudge values up by far less than a grid cell.
        values = np.minimum(self.grid.values() + width * 1e-9, top)
        counts, edges = np.histogram(values, bins=bins, range=(low, top), weights=self.grid.counts)
        return {"edges": [_tidy(e) for e in edges], "counts": [int(c) for c in counts]}


def _bin_width(span: float, max_bins: int) -> float:
    """The narrowest of 1, 2, 2.5, 5 x 10^e (e >= -1) that covers `span` in at most `max_bins` bins."""
    exponent = max(-1, math.floor(math.log10(span / max_bins)) if span > 0 else -1)
    while True:
        for mantissa in (1, 2, 2.5, 5):
            width = mantissa * 10.0**exponent
            if span / width <= max_bins + 1e-9:
                return width
        exponent += 1


class _Group:
    """Everything counted for one group of rows (or for all of them)."""

    def __init__(self, pass_at: Sequence[int] = DEFAULT_PASS_AT) -> None:
        self.rows = 0
        self.columns = {name: _Column() for name in SCORE_FIELDS}
        self.test_rows = 0
        self.test_sums = np.zeros(len(TEST_PARTS))
        self.sources: dict[str, int] = {}  # the student's correctness source -> rows
        self.verdicts: dict[str, int] = {}  # outside / inside -> rows
        self.tasks: dict[str, list[int]] = {}  # task_id -> [samples with tests, samples passing them all]
        self.pass_at = pass_at

    def add(self, batch: "_Batch", index: np.ndarray | slice) -> None:
        values = {name: column[index] for name, column in batch.values.items()}
        self.rows += len(values[SCORE_FIELDS[0]])
        for name, column in self.columns.items():
            column.add(values[name])
        tests = batch.tests[index]
        has = np.isfinite(tests[:, 1])  # rows that say how many student tests there were
        self.test_rows += int(has.sum())
        self.test_sums += np.nansum(tests[has], axis=0)
        for label, counts in ((CORRECTNESS_SOURCE, self.sources), (VERDICT_SOURCE, self.verdicts)):
            codes, names = batch.labels[label]
            for code, count in enumerate(np.bincount(codes[index], minlength=len(names))):
                if count and names[code] != MISSING:
                    counts[names[code]] = counts.get(names[code], 0) + int(count)
        self._add_tasks(batch, index, tests)

    def merge(self, other: "_Group") -> None:
        self.rows += other.rows
        for name, column in self.columns.items():
            column.merge(other.columns[name])
        self.test_rows += other.test_rows
        self.test_sums += other.test_sums
        for mine, theirs in ((self.sources, other.sources), (self.verdicts, other.verdicts)):
            for label, count in theirs.items():
                mine[label] = mine.get(label, 0) + count
        for task, (samples, passing) in other.tasks.items():
            counts = self.tasks.setdefault(task, [0, 0])
            counts[0] += samples
            counts[1] += passing

    def _add_tasks(self, batch: "_Batch", index: np.ndarray | slice, tests: np.ndarray) -> None:
        codes, names = batch.labels[TASK]
        sources, source_names = batch.labels[SAMPLE_SOURCE]
        teacher = np.array([name == TEACHER for name in source_names], dtype=bool)[sources[index]]
        tested = (tests[:, 1] > 0) & ~teacher  # NaN compares False: rows without test counts are not samples
        correct = tested & (tests[:, 0] == tests[:, 1])
        codes = codes[index]
        samples = np.bincount(codes[tested], minlength=len(names))
        passing = np.bincount(codes[correct], minlength=len(names))
        for code in np.flatnonzero(samples):
            if names[code] != MISSING:
                counts = self.tasks.setdefault(names[code], [0, 0])
                counts[0] += int(samples[code])
                counts[1] += int(passing[code])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows}
        for name, column in self.columns.items():
            out[name] = column.summary()
        if self.sources:
            out["correctness_sources"] = dict(sorted(self.sources.items()))
            out["unassessed"] = self.sources.get(UNASSESSED, 0)
        if self.verdicts:
            out["verdicts"] = dict(sorted(self.verdicts.items()))
        if self.tasks:
            out["pass_at_k"] = pass_at_k(self.tasks.values(), self.pass_at)
        if self.test_rows:
            student_passed, student_total, teacher_passed, teacher_total = self.test_sums
            out["tests"] = {
                "rows": self.test_rows,
                "student_passed": int(student_passed),
                "student_total": int(student_total),
                "student_pass_rate": _rate(student_passed, student_total),
                "teacher_passed": int(teacher_passed),
                "teacher_total": int(teacher_total),
                "teacher_pass_rate": _rate(teacher_passed, teacher_total),
            }
        return out


def pass_at_k(tasks: Iterable[Sequence[int]], ks: Sequence[int]) -> dict[str, Any]:
    """The unbiased pass@k of the Codex paper (Chen et al., 2021), averaged over tasks:
    per task with n samples of which c pass every test, 1 - C(n-c, k) / C(n, k).
    Tasks with fewer than k samples are left out of pass@k (counted in `tasks_too_few`)."""
    tasks = [(n, c) for n, c in tasks]
    out: dict[str, Any] = {"tasks": len(tasks), "samples": sum(n for n, _ in tasks)}
    for k in ks:
        estimates = [_pass_at(n, c, k) for n, c in tasks if n >= k]
        out[str(k)] = _tidy(sum(estimates) / len(estimates)) if estimates else None
        if len(estimates) < len(tasks):
            out.setdefault("tasks_too_few", {})[str(k)] = len(tasks) - len(estimates)
    return out


def _pass_at(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): the ratio of binomials without huge numbers
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _rate(passed: float, total: float) -> float | None:
    return _tidy(passed / total) if total else None


def _tidy(value: float | None) -> float | None:
    """Six decimals: enough for scores, and stable across runs for the dataset card. A figure that
    overflows float64 (the std of values near 1e308) is None: JSON has no NaN or Infinity."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 6)


# ---------------------------------------------------------------- a batch of rows, from DuckDB or line by line


@dataclass
class _Batch:
    """The columns stats needs from one block: scores (NaN = missing), group labels, test counts."""

    values: dict[str, np.ndarray]
    labels: dict[str, tuple[np.ndarray, list[str]]]  # field -> (codes, label of each code)
    tests: np.ndarray  # rows x TEST_PARTS, NaN = missing

    @property
    def size(self) -> int:
        return len(self.tests)


def _duckdb_batch(batch, labels: Sequence[str], default_split: str | None) -> _Batch:
    """A _Batch from a RecordBatch of `_columnar_pass`'s query: scores and test counts as float64
    (null = missing), each label as text."""
    codes_by_label = {}
    for name in labels:
        codes, values = columnar.encoded(batch.column(f"label {name}"))
        names = [_label(name, value, default_split) for value in [*values, None]]
        codes_by_label[name] = (codes, names)
    numbers = {name: columnar.numbers(batch.column(name)) for name in (*SCORE_FIELDS, *TEST_PARTS)}
    tests = np.column_stack([numbers.pop(name) for name in TEST_PARTS]).reshape(-1, len(TEST_PARTS))
    return _Batch(numbers, codes_by_label, tests)


def _label(name: str, value: Any, default_split: str | None) -> str:
    if name == "split" and default_split:
        return default_split  # rows in train.jsonl are train rows: the file is what loaders go by
    if value is None:
        return MISSING
    if not isinstance(value, str):
        return json.dumps(value)
    return normalize_language(value) if name == "language" else value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.inf


def _test_counts(row: dict) -> tuple[float, float, float, float]:
    results = row.get("test_results")
    if not isinstance(results, dict):
        return (math.nan,) * 4
    student = results.get("student") if isinstance(results.get("student"), dict) else results
    teacher = results.get("teacher") if isinstance(results.get("teacher"), dict) else {}
    return (
        _number(student.get("passed")),
        _number(student.get("total")),
        _number(teacher.get("passed")),
        _number(teacher.get("total")),
    )


def _careful_batch(
    block: bytes, first_line: int, source: str, by: Sequence[str], default_split: str | None, on_skip: SkipHandler
) -> _Batch:
    """The block line by line through records.parse_line, reporting each line it skips."""
    rows = []
    for offset, line in enumerate(block.split(b"\n")):
        if not line.strip():
            continue
        row, reason = parse_line(line)
        if row is None:
            on_skip(Skip(source, first_line + offset, reason))
        else:
            rows.append(row)
    return _rows_batch(rows, by, default_split)


def _rows_batch(rows: list[dict], by: Sequence[str], default_split: str | None) -> _Batch:
    values = {name: np.array([_number(row.get(name)) for row in rows], dtype=np.float64) for name in SCORE_FIELDS}
    tests = np.array([_test_counts(row) for row in rows], dtype=np.float64).reshape(len(rows), len(TEST_PARTS))
    labels = {}
    for name in dict.fromkeys((*by, TASK, SAMPLE_SOURCE, *STUDENT_SOURCES)):
        names: dict[str, int] = {}
        read = (
            (lambda row, key=STUDENT_SOURCES[name]: _student_source(row, key))
            if name in STUDENT_SOURCES
            else (lambda row, name=name: row.get(name))
        )
        codes = [names.setdefault(_label(name, read(row), default_split), len(names)) for row in rows]
        labels[name] = (np.array(codes, dtype=np.int64), list(names))
    return _Batch(values, labels, tests)


def _student_source(row: dict, key: str) -> str | None:
    sources = row.get("score_sources")
    student = sources.get("student") if isinstance(sources, dict) else None
    source = student.get(key) if isinstance(student, dict) else None
    return source if isinstance(source, str) else None


# ---------------------------------------------------------------- the pass over the files


def _row_label_fields(by: Sequence[str]) -> list[str]:
    """The row fields the parsers must label for the `by` groups."""
    fields = [name for name in by if name not in DERIVED_FIELDS]
    if MODEL in by:
        fields += MODEL_PARTS
    return list(dict.fromkeys(fields))


def _model_labels(batch: "_Batch") -> tuple[np.ndarray, list[str]]:
    """Each row's `model` group: its base model, then ` + adapter` when it was loaded with one."""
    (base_codes, base_names), (adapter_codes, adapter_names) = (batch.labels[name] for name in MODEL_PARTS)
    pairs, codes = np.unique(base_codes * len(adapter_names) + adapter_codes, return_inverse=True)
    names = []
    for pair in pairs.tolist():
        base, adapter = base_names[pair // len(adapter_names)], adapter_names[pair % len(adapter_names)]
        names.append(base if adapter == MISSING else f"{base} + {adapter}")
    return codes.reshape(-1), names


@dataclass
class _Skips:
    total: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, skip: Skip) -> None:
        self.total += 1
        kind = _reason_kind(skip.reason)
        self.reasons[kind] = self.reasons.get(kind, 0) + 1
        if len(self.examples) < _SKIP_EXAMPLES:
            self.examples.append(str(skip))


def _reason_kind(reason: str) -> str:
    """A reason without its particulars, to count skips by kind: `field 'reward' has the wrong type`."""
    if reason.startswith("field '"):
        return reason.split(" should be")[0] + " has the wrong type"
    return reason.split(":")[0]


def compute_stats(
    sources: Sequence[str | Path],
    *,
    by: Sequence[str] = DEFAULT_BY,
    strict: bool = False,
    on_skip: SkipHandler | None = None,
    block_bytes: int = BLOCK_BYTES,
    pass_at: Sequence[int] = DEFAULT_PASS_AT,
    careful: bool = False,
    compare: str | None = None,
) -> dict[str, Any]:
    """Statistics of dataset files (JSONL, Parquet shards, or dataset directories) as a plain
    JSON-ready dict (see README for its keys).

    Malformed lines are counted and passed to `on_skip`, or end the pass with an InputError
    under `strict`. `careful` reads every file block by block even where DuckDB could (the same
    figures, slower: the fast path's check). `compare` names a `by` field whose groups are
    compared, each with the first, by the paired difference of pass@k on the tasks both have.
    """
    by = list(dict.fromkeys([*by, *([compare] if compare else [])]))
    for name in by:
        if dict in FIELD_TYPES.get(name, ()):
            raise InputError(f"cannot group by '{name}': it holds an object")
    if any(k < 1 for k in pass_at):
        raise InputError(f"pass@k needs k >= 1, got {min(pass_at)}")
    label_fields = _row_label_fields(by)
    totals = _Totals(by, pass_at)
    skips = _Skips()
    files = []

    for source in dataset_files(sources):
        name = display_name(source)
        file_skips = skips.total
        default_split = implied_split(source)

        def skip_line(skip: Skip, report=skip_reporter(strict, on_skip)) -> None:
            report(skip)
            skips.add(skip)

        found = _Totals(by, pass_at)
        if is_parquet(source):
            for rows, first_row in parquet_rows(source):
                found.add(_rows_batch(_valid_rows(rows, first_row, name, skip_line), label_fields, default_split))
        elif careful or not columnar.eligible(source) or not _columnar_pass(source, found, label_fields, default_split):
            found = _Totals(by, pass_at)
            first_line = 1
            for block in iter_blocks(source, block_bytes):
                found.add(_careful_batch(block, first_line, name, label_fields, default_split, skip_line))
                first_line += block.count(b"\n")
        if FILE in by:
            found.groups[FILE][name] = found.overall
        totals.merge(found)
        files.append({"path": name, "rows": found.overall.rows, "skipped": skips.total - file_skips})

    overall = totals.overall
    result = {"files": files, **overall.summary()}
    result["skipped"] = {"total": skips.total, "reasons": skips.reasons, "examples": skips.examples}
    ordered = {field_name: _in_order(field_name, found) for field_name, found in totals.groups.items()}
    result["by"] = {
        field_name: {label: group.summary() for label, group in groups.items()}
        for field_name, groups in ordered.items()
    }
    if compare:
        result["compare"] = {"field": compare, **paired_pass_at_k(ordered[compare], pass_at)}
    result["histograms"] = {name: column.histogram() for name, column in overall.columns.items() if column.moments.n}
    result["quantile_resolution"] = {name: 1 / column.grid.scale for name, column in overall.columns.items()}
    return result


class _Totals:
    """Everything counted over some rows: all of them, and each group of each `by` field."""

    def __init__(self, by: Sequence[str], pass_at: Sequence[int]) -> None:
        self.by, self.pass_at = by, pass_at
        self.overall = _Group(pass_at)
        self.groups: dict[str, dict[str, _Group]] = {name: {} for name in by}

    def add(self, batch: _Batch) -> None:
        if not batch.size:
            return
        self.overall.add(batch, slice(None))
        for field_name in self.by:
            if field_name == FILE:  # the whole file is one group: compute_stats adds it
                continue
            codes, names = _model_labels(batch) if field_name == MODEL else batch.labels[field_name]
            _add_by_group(self.groups[field_name], batch, codes, names, self.pass_at)

    def merge(self, other: "_Totals") -> None:
        self.overall.merge(other.overall)
        for field_name, found in other.groups.items():
            for label, group in found.items():
                self.groups[field_name].setdefault(label, _Group(self.pass_at)).merge(group)


def _in_order(field_name: str, groups: dict[str, _Group]) -> dict[str, _Group]:
    """Files in the order given; numbers (steps, epochs) by value; other labels alphabetically;
    rows without the field last."""
    if field_name == FILE:
        return groups

    def key(label: str) -> tuple:
        try:
            return (label == MISSING, 0, float(label), label)
        except ValueError:
            return (label == MISSING, 1, 0.0, label)

    return {label: groups[label] for label in sorted(groups, key=key)}


def paired_pass_at_k(groups: dict[str, _Group], ks: Sequence[int]) -> dict[str, Any]:
    """Each group against the first, on the tasks both sampled: the mean over those tasks of the
    difference of their pass@k estimates, with its standard error (the differences' sample std
    over the square root of their number). Pairing by task removes the spread between easy and
    hard tasks, which two independent means would carry."""
    labels = [label for label in groups if label != MISSING and groups[label].tasks]
    out: dict[str, Any] = {"baseline": labels[0] if labels else None, "groups": {}}
    if not labels:
        return out
    base = groups[labels[0]].tasks
    for label in labels[1:]:
        other = groups[label].tasks
        shared = [task for task in base if task in other]
        entry: dict[str, Any] = {"tasks": len(shared)}
        for k in ks:
            pairs = [(base[task], other[task]) for task in shared if min(base[task][0], other[task][0]) >= k]
            differences = np.array([_pass_at(*after, k) - _pass_at(*before, k) for before, after in pairs])
            n = len(differences)
            entry[str(k)] = {
                "tasks": n,
                "difference": _tidy(differences.mean()) if n else None,
                "standard_error": _tidy(differences.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
            }
        out["groups"][label] = entry
    return out


def _columnar_pass(source: str | Path, found: _Totals, by: Sequence[str], default_split: str | None) -> bool:
    """Count the file's rows into `found` through DuckDB; False (with `found` half filled: drop it)
    when the fast path cannot vouch for the careful path's answer."""
    columns = {name: columnar.score_column(name) for name in SCORE_FIELDS}
    columns.update(columnar.pass_count_columns())
    labels = list(dict.fromkeys([*by, TASK, SAMPLE_SOURCE]))
    columns.update({f"label {name}": columnar.label_expression(name) for name in labels})
    columns.update({f"label {label}": columnar.student_source_column(key) for label, key in STUDENT_SOURCES.items()})
    try:
        with closing(columnar.read_batches(source, columns, by)) as batches:
            for batch in batches:
                found.add(_duckdb_batch(batch, [*labels, *STUDENT_SOURCES], default_split))
    except columnar.Unvouched:
        return False
    return True


def _valid_rows(rows: list[dict], first_row: int, source: str, on_skip: SkipHandler) -> list[dict]:
    """Rows (of a Parquet shard) that are records, as parse_line would take them; the others reported."""
    kept = []
    for offset, row in enumerate(rows):
        record, problem = take_row(row)
        if record is None:
            on_skip(Skip(source, first_row + offset, problem))
        else:
            kept.append(record)
    return kept


def _add_by_group(
    found: dict[str, _Group], batch: _Batch, codes: np.ndarray, names: list[str], pass_at: Sequence[int]
) -> None:
    # One stable sort, then a slice per group: linear in rows however many groups there are.
    order = np.argsort(codes.astype(np.int32), kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for start, end in zip(starts, ends):
        label = names[sorted_codes[start]]
        found.setdefault(label, _Group(pass_at)).add(batch, order[start:end])
