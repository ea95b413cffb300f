"""Convert a JSONL split into Parquet shards named the way the Hub and `datasets` expect.

`data/train-00000-of-00003.parquet`, ...: each shard holds about `max_shard_size` bytes of
JSONL rows (Parquet is usually several times smaller), written in row groups so memory stays
flat on multi-GB splits. The schema is merged over all splits by `check_split`, so every shard has the same one
and the output is byte-for-byte the same for the same input (a re-upload is a no-op).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pyarrow as pa

from ..errors import InputError
from ..records import iter_lines, parse_line

if TYPE_CHECKING:  # stats reads Parquet without the upload's checks (and their secret scanner's start-up)
    from .splitcheck import SplitCheck

DEFAULT_MAX_SHARD_SIZE = 500 * 1000**2  # the default of datasets' push_to_hub
_ROW_GROUP_ROWS = 10_000
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}


def parse_size(text: str | int) -> int:
    """`500MB`, `1GB`, `64MiB` or a plain number of bytes -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*", str(text), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"invalid size {text!r} (expected e.g. 500MB, 1GB or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


def shard_paths(split: str, count: int) -> list[str]:
    """Paths in the repo of a split's shards."""
    return [f"data/{split}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


def write_shards(check: SplitCheck, schema: pa.Schema, out_dir: Path, max_shard_size: int) -> list[str]:
    """Write `check.path` as Parquet shards with `schema` under `out_dir`; return their repo paths."""
    count = max(1, math.ceil(check.bytes / max_shard_size))
    names = shard_paths(check.split, count)
    # Shard i ends once the JSONL bytes read reach (i + 1) / count of the total: even shards.
    bounds = [check.bytes * (i + 1) / count for i in range(count)]
    try:
        _convert(check, schema, out_dir, names, bounds)
    except pa.ArrowException as exc:  # e.g. a struct field that is always `{}` has no Parquet type
        raise InputError(f"{check.path}: cannot be written as Parquet: {exc}") from None
    return names


def _convert(check: SplitCheck, schema: pa.Schema, out_dir: Path, names: list[str], bounds: list[float]) -> None:
    shard, seen, rows = 0, 0, []
    writer = _open(out_dir / names[0], schema)
    try:
        for _, line in iter_lines(check.path):
            row, reason = parse_line(line)
            if row is None:  # the file changed since it was checked
                raise InputError(f"{check.path}: changed while converting to Parquet ({reason})")
            rows.append(row)
            seen += len(line)
            if seen >= bounds[shard] and shard < len(names) - 1:
                _write(writer, rows, schema)
                writer.close()
                shard += 1
                writer = _open(out_dir / names[shard], schema)
            elif len(rows) >= _ROW_GROUP_ROWS:
                _write(writer, rows, schema)
        _write(writer, rows, schema)
    finally:
        writer.close()


def _open(path: Path, schema: pa.Schema):
    import pyarrow.parquet as pq  # here: stats and filter import this module for JSONL too

    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(path, schema)


def _write(writer, rows: list[dict], schema: pa.Schema) -> None:
    if rows:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
        rows.clear()


def is_parquet(source: str | Path) -> bool:
    return str(source).endswith(".parquet")


def parquet_rows(path: str | Path) -> Iterator[tuple[list[dict], int]]:
    """(rows, number of the first) of a Parquet file, one row group at a time (memory stays flat)."""
    try:
        # No pre-buffering and one thread: pyarrow's I/O and CPU pools can abort the process (see arrow_json).
        import pyarrow.parquet as pq

        shard = pq.ParquetFile(path, pre_buffer=False)
        first = 1
        for group in range(shard.num_row_groups):
            # Parquet has a column for every field of every row: null is where a row had none.
            rows = [_without_nulls(row) for row in shard.read_row_group(group, use_threads=False).to_pylist()]
            yield rows, first
            first += len(rows)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: cannot read as Parquet: {exc}") from None


def _without_nulls(value):
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
