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
from ..secrets import scan_value
from .arrow_json import read_json_block

# Bytes of JSONL per Arrow type-inference block: large enough to be fast, small enough to stay in memory.
_BLOCK_BYTES = 8 * 1024 * 1024


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

    `on_row(bytes_read)` is called after every block of rows, for progress bars.
    """
    check = SplitCheck(split, path)
    block: list[tuple[int, bytes]] = []
    size = 0
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
            block.append((number, line))
            size += len(line)
        if size >= _BLOCK_BYTES:
            _unify(check, block)
            size = 0
            if on_row:
                on_row(check.bytes)
    _unify(check, block)
    return check


def _unify(check: SplitCheck, block: list[tuple[int, bytes]]) -> None:
    lines = list(block)
    block.clear()
    if not lines or check.schema is None:
        return
    # Fast path: Arrow's C++ JSON reader, the one datasets itself uses, infers a whole block at once.
    try:
        table = read_json_block(b"".join(line if line.endswith(b"\n") else line + b"\n" for _, line in lines))
        check.schema = _merge(check.schema, _no_timestamps(table.schema))
        return
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    # Some row disagrees: go row by row with Python's parser to name the first one (file:line).
    for number, line in lines:
        row, _ = parse_line(line)
        try:
            check.schema = _merge(check.schema, pa.Table.from_pylist([row]).schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            check.schema, check.conflict = (
                None,
                f"{check.path}:{number}: a field's type differs from earlier rows ({exc})",
            )
            return


def _no_timestamps(schema: pa.Schema) -> pa.Schema:
    """The JSON reader turns ISO-looking strings into timestamps; in JSON they are strings, and stay so."""
    return pa.schema([field.with_type(_string_for_timestamp(field.type)) for field in schema])


def _string_for_timestamp(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_string_for_timestamp(f.type)) for f in kind])
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_string_for_timestamp(kind.value_type)))
    return kind


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
