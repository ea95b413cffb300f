"""Check a split file before it is published: every line a valid record, its Arrow schema, no secrets.

One streaming pass per file. A malformed line is an InputError naming file:line, raised before a
single byte leaves the machine. The schema (one Arrow type per field, merged over all rows the
way the JSON loader merges them) lets the card declare features for every split and Parquet
shards share one schema; a field whose type changes between rows is reported as `conflict`
(datasets can still read such JSONL, Parquet cannot hold it). Secrets are counted and the first
one located, so the caller decides whether they stop the upload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa

from ..errors import InputError
from ..records import iter_lines, parse_line
from .secrets import scan_value

# Rows per Arrow type-inference batch: large enough to be fast, small enough to stay in memory.
_BATCH_ROWS = 2000


@dataclass(frozen=True)
class SecretHit:
    """Where a credential was found (never the credential itself)."""

    path: Path
    line: int
    field: str
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} (field {self.field}, {self.kind})"


@dataclass
class SplitCheck:
    """What one pass over a split file found."""

    split: str
    path: Path
    rows: int = 0
    bytes: int = 0
    schema: pa.Schema | None = field(default_factory=lambda: pa.schema([]))
    conflict: str | None = None  # file:line and why, when `schema` is None
    secrets: int = 0
    first_secret: SecretHit | None = None


def check_split(split: str, path: Path, *, on_row: Callable[[int], None] | None = None) -> SplitCheck:
    """Validate `path` strictly, infer the Arrow schema `load_dataset` would build, count secrets.

    `on_row(bytes_read)` is called every few thousand rows, for progress bars.
    """
    check = SplitCheck(split, path)
    batch: list[tuple[int, dict]] = []
    for number, line in iter_lines(path):
        row, reason = parse_line(line)
        if row is None:
            raise InputError(f"{path}:{number}: {reason}")
        check.rows += 1
        check.bytes += len(line)
        for field_path, match in scan_value(row):
            check.secrets += 1
            if check.first_secret is None:
                check.first_secret = SecretHit(path, number, field_path or "(row)", match.kind)
        if check.schema is not None:
            batch.append((number, row))
        if len(batch) >= _BATCH_ROWS:
            _unify(check, batch)
            if on_row:
                on_row(check.bytes)
    _unify(check, batch)
    return check


def _unify(check: SplitCheck, batch: list[tuple[int, dict]]) -> None:
    rows = list(batch)
    batch.clear()
    if not rows or check.schema is None:
        return
    try:
        check.schema = _merge(check.schema, pa.Table.from_pylist([row for _, row in rows]).schema)
        return
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # Some row in this batch disagrees with the others: find the first one, for a file:line message.
    for number, row in rows:
        try:
            check.schema = _merge(check.schema, pa.Table.from_pylist([row]).schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            check.schema, check.conflict = None, f"{check.path}:{number}: a field's type differs from earlier rows ({exc})"
            return


def merge_schemas(checks: list[SplitCheck]) -> pa.Schema | None:
    """One schema for all splits (datasets wants the same features in every split), or None on a conflict."""
    schema = pa.schema([])
    for check in checks:
        if check.schema is None:
            return None
        try:
            schema = _merge(schema, check.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            check.conflict = f"{check.path}: a field's type differs from the other splits ({exc})"
            return None
    return schema


def _merge(left: pa.Schema, right: pa.Schema) -> pa.Schema:
    # "permissive" promotes the way the JSON loader does: null -> any type, int -> float, struct fields merged.
    return pa.unify_schemas([left, right], promote_options="permissive")
