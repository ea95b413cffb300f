"""The fast path of `stats` and `filter`: DuckDB reads the columns of a JSONL file, and says when it cannot vouch for them.

DuckDB's JSON reader is several times faster than any Python or pyarrow parse (docs/data-tools.md
has the figures), but it forgives what `records.parse_line` refuses, and a fast path must never
count a row that the careful path skips. So a file is read here only if

1. a scan of its bytes (RE2, through pyarrow) finds none of the syntax DuckDB forgives and
   Python's `json` does not: trailing commas, `nan`/`inf` literals in any spelling, and lines
   with more opening brackets than `records.MAX_DEPTH` (which could nest deeper than it); and
2. DuckDB parses every line (it refuses invalid UTF-8, lone surrogates, bad escapes, duplicate
   top-level keys and lines over 16 MiB); and
3. every row's known fields have the JSON type `records.FIELD_TYPES` names (checked on the JSON
   text DuckDB keeps for each field), its numbers are finite, and the objects read inside
   (`test_results`, `score_sources`) have no duplicate keys or deep nesting.

Anything else raises `Unvouched`, and the caller reads the file line by line instead, which
reports each bad line as file:line: reason. The checks are deliberately wider than the rules
(a code sample containing `[1, 2,]` sends its file to the careful path): a false alarm costs
speed, never a different answer.
"""

from __future__ import annotations

import mmap
import os
import resource
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..records import FIELD_TYPES, MAX_DEPTH, STDIN, block_may_nest_too_deep, iter_blocks
from .parquet import is_parquet

# Syntax DuckDB's reader accepts and Python's json refuses. Each pattern starts with a literal
# byte, which lets RE2 skip ahead with memchr: each scans at several GB/s.
FORGIVEN_SYNTAX = (
    r",[ \t\r]*(?:[\]}]|[-+]?[nNiI][nNaA][fFnN])",  # trailing comma; nan/inf in a list or object
    r":[ \t\r]*[-+]?[nNiI][nNaA][fFnN]",  # nan/inf as a value
    r"\[[ \t\r]*[-+]?[nNiI][nNaA][fFnN]",  # nan/inf first in a list
)
SCAN_BYTES = 16 << 20
BATCH_ROWS = 1 << 16
NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')"


class Unvouched(Exception):
    """The fast path cannot promise the careful path's answer for this file."""


def eligible(source: str | Path) -> bool:
    """A JSONL file (plain, or gzip by its .gz name, as records.open_input reads it) that can be
    read twice (not stdin), whose name DuckDB takes literally: it reads `*`, `?`, `[` and `{` as
    a glob, which could match other files."""
    name = str(source)
    return name != STDIN and not is_parquet(name) and not set(name) & set("*?[]{}") and Path(name).is_file()


def scan_forgiven_syntax(source: str | Path, stop: threading.Event | None = None) -> bool:
    """Whether the file holds what only DuckDB would accept: FORGIVEN_SYNTAX, or a line with enough
    brackets to nest deeper than records.MAX_DEPTH (DuckDB follows any depth). `stop` ends the
    scan early (its answer is then True: nothing was vouched for)."""
    for block in _blocks(source):
        if (stop is not None and stop.is_set()) or _forgiven_in(block):
            return True
    return False


def _forgiven_in(block) -> bool:
    if syntax_forgiven_in(block):
        return True
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
    return block_may_nest_too_deep(block, ends)


def syntax_forgiven_in(block) -> bool:
    """Whether a block of whole lines (bytes or a memoryview) holds FORGIVEN_SYNTAX."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = pa.py_buffer(block)
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    array = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data])  # no copy
    return any(pc.any(pc.match_substring_regex(array, pattern)).as_py() for pattern in FORGIVEN_SYNTAX)


class SyntaxChecks:
    """syntax_forgiven_in for each block submitted, in a thread (RE2 leaves Python's lock), at
    most one block behind; Unvouched as soon as one is found, or at the end. Inline under an
    address-space limit."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = None if _address_space_limited() else ThreadPoolExecutor(1)
        self.pending = None

    def submit(self, block: bytes) -> None:
        self._settle()
        if self.pool is None:
            self._verdict(syntax_forgiven_in(block))
        else:
            self.pending = self.pool.submit(syntax_forgiven_in, block)

    def _settle(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._verdict(pending.result())

    @staticmethod
    def _verdict(forgiven: bool) -> None:
        if forgiven:
            raise Unvouched("syntax only DuckDB accepts")

    def __enter__(self) -> "SyntaxChecks":
        return self

    def __exit__(self, kind, *_) -> None:
        try:
            if kind is None:
                self._settle()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


def _blocks(source: str | Path) -> Iterator:
    """The file in blocks that end at line ends (the patterns never span one): a plain file mapped
    into memory (no copy; each block's pages let go once scanned, so resident memory stays flat),
    a gzipped one decompressed."""
    path = Path(source)
    if path.suffix == ".gz":
        yield from iter_blocks(path, SCAN_BYTES)
        return
    with path.open("rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        if not size:
            return
        with mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            start = 0
            while start < size:
                newline = mapped.find(b"\n", min(start + SCAN_BYTES, size) - 1)
                end = size if newline < 0 else newline + 1
                with memoryview(mapped)[start:end] as block:
                    yield block  # the caller keeps no reference to it
                page = start - start % mmap.PAGESIZE
                mapped.madvise(mmap.MADV_DONTNEED, page, end - page)
                start = end


# ---------------------------------------------------------------- the query


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind(types: tuple[type, ...]) -> str:
    if dict in types:
        return "object"
    if list in types:
        return "text or list"
    if str in types:
        return "text"
    if float in types:
        return "number"
    return "int"


def _field_ok(column: str, kind: str) -> str:
    """SQL that is true when the JSON text DuckDB kept for a present field has the expected type."""
    # Bytes, not characters (strlen is O(1)): a bracket is one byte, so this still bounds their number.
    deep = f"(strlen({column}) < {MAX_DEPTH} OR strlen({column}) - strlen(replace(replace({column}, '[', ''), '{{', '')) < {MAX_DEPTH})"
    checks = {
        "text": f"starts_with({column}, '\"')",
        "text or list": f"(starts_with({column}, '\"') OR (starts_with({column}, '[') AND {deep}))",
        "object": f"(starts_with({column}, '{{') AND {deep})",
        "int": f"regexp_full_match({column}, '-?[0-9]{{1,18}}')",
        # A quoted number or a bool would cast too: the text must be neither, and the value finite.
        "number": f"(NOT starts_with({column}, '\"') AND NOT starts_with({column}, 't') "
        f"AND NOT starts_with({column}, 'f') AND isfinite(TRY_CAST({column} AS DOUBLE)))",
    }
    return f"({column} IS NULL OR coalesce({checks[kind]}, false))"


def _unique_keys(json: str) -> str:
    """True when a JSON object (or NULL / a non-object) has no key twice: Python keeps the last, DuckDB the first."""
    return f"coalesce(len(json_keys({json})) = len(list_distinct(json_keys({json}))), true)"


def _number_at(json: str, key: str) -> str:
    """records._number of obj[key]: a finite or infinite double for a JSON number, NULL (NaN) for anything else."""
    return f"CASE WHEN json_type({json}, '$.{key}') IN {NUMBER_TYPES} THEN json_extract({json}, '$.{key}')::DOUBLE END"


def _object_at(json: str, key: str) -> str:
    return f"CASE WHEN json_type({json}, '$.{key}') = 'OBJECT' THEN json_extract({json}, '$.{key}') END"


def label_expression(name: str) -> str:
    """A grouping field as text: a string's value; a whole number's digits (as json.dumps writes them)."""
    column = _ident(name)
    if _kind(FIELD_TYPES.get(name, (str,))) == "int":
        return f"{column}::VARCHAR"
    return f"{column}->>'$'"


def _label_ok(name: str) -> str:
    """Labels the careful path would spell its own way (floats, lists, objects) are not vouched for."""
    column = _ident(name)
    if _kind(FIELD_TYPES.get(name, (str,))) == "int":
        return _field_ok(column, "int")
    return f"({column} IS NULL OR starts_with({column}, '\"'))"


def pass_count_columns() -> dict[str, str]:
    """stats' four test counts as stats._test_counts reads them (student falls back to the flat shape)."""
    results = _ident("test_results")
    student = f"coalesce({_object_at(results, 'student')}, {results})"
    teacher = _object_at(results, "teacher")
    return {
        "student_passed": _number_at(student, "passed"),
        "student_total": _number_at(student, "total"),
        "teacher_passed": _number_at(teacher, "passed"),
        "teacher_total": _number_at(teacher, "total"),
    }


def student_source_column(key: str) -> str:
    sources = _ident("score_sources")
    return (
        f"CASE WHEN json_type({sources}, '$.student') = 'OBJECT' "
        f"AND json_type({sources}, '$.student.{key}') = 'VARCHAR' THEN {sources}->>'$.student.{key}' END"
    )


def score_column(name: str) -> str:
    """A score as a double; NULL when absent (rows where it is not a finite number are doubted)."""
    return f"{_ident(name)}::DOUBLE"


def build_query(source: str | Path, columns: dict[str, str], group_fields: Sequence[str] = ()) -> str:
    """SELECT `columns` (alias -> SQL over the file's fields) and `doubt`: a row the fast path cannot vouch for."""
    fields = dict.fromkeys([*FIELD_TYPES, *group_fields])
    declared = ", ".join(f"{_quote(name)}: 'JSON'" for name in fields)
    checks = [_field_ok(_ident(name), _kind(types)) for name, types in FIELD_TYPES.items()]
    checks += [_label_ok(name) for name in group_fields]
    results, sources = _ident("test_results"), _ident("score_sources")
    for inner in (results, _object_at(results, "student"), _object_at(results, "teacher")):
        checks.append(_unique_keys(inner))
    for inner in (sources, _object_at(sources, "student")):
        checks.append(_unique_keys(inner))
    select = ", ".join(f"{expression} AS {_ident(alias)}" for alias, expression in columns.items())
    return (
        f"SELECT {select}, NOT ({' AND '.join(checks)}) AS doubt "
        # An absolute path: a name like `s3:x` or `http:x` must not read as a URL.
        f"FROM read_json({_quote(os.path.abspath(source))}, format='newline_delimited', columns={{{declared}}})"
    )


def read_batches(
    source: str | Path, columns: dict[str, str], group_fields: Sequence[str] = (), *, scan_bytes: bool = True
) -> Iterator:
    """pyarrow RecordBatches of `columns` for every row of `source`, in file order. Unvouched, at
    any point up to the end, when the careful path might read the file differently: callers
    keep what they gather apart until the iteration ends. Without `scan_bytes`, the caller checks the
    bytes itself (filter does, as it copies them)."""
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    query = build_query(source, columns, group_fields)
    scan = _background(scan_forgiven_syntax, source) if scan_bytes else (lambda abandon=False: False)
    try:
        connection = duckdb.connect(config=_config())
    except duckdb.Error as exc:
        scan(abandon=True)
        raise Unvouched(str(exc).splitlines()[0]) from None
    finished = False
    try:
        connection.execute("SET enable_progress_bar = false")  # it would draw on our stderr
        for batch in connection.sql(query).to_arrow_reader(BATCH_ROWS):
            if pc.any(batch.column("doubt")).as_py():
                raise Unvouched("a row whose fields the fast path cannot vouch for")
            yield batch
        finished = True
    except (duckdb.Error, pa.ArrowException, OSError) as exc:  # query errors also come through the Arrow stream
        raise Unvouched(str(exc).splitlines()[0]) from None
    finally:
        connection.close()
        forgiven = scan(abandon=not finished)
    if forgiven:
        raise Unvouched("syntax only DuckDB accepts")


def numbers(column) -> np.ndarray:
    """A DOUBLE column of a batch as float64, a null (an absent field) as NaN."""
    return _as_numpy(column, np.float64, np.nan)


def encoded(column) -> tuple[np.ndarray, list]:
    """A text column of a batch as a code per row and the value of each code (len(values): null)."""
    dictionary = column.dictionary_encode()
    values = dictionary.dictionary.to_pylist()
    return _as_numpy(dictionary.indices, np.int32, len(values)).astype(np.int64), values


def _as_numpy(array, dtype: type, missing) -> np.ndarray:
    # From the buffers: pyarrow's to_numpy imports pandas, which would cost every run 0.13 s.
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * np.dtype(dtype).itemsize)
    if not array.null_count:
        return values
    bits = np.unpackbits(np.frombuffer(validity, np.uint8), count=array.offset + len(array), bitorder="little")
    return np.where(bits[array.offset :].astype(bool), values, missing)


def _background(function, source):
    """Run `function(source, stop)` in a thread (the byte scan leaves Python's lock, as the query
    does, so on two cores it costs no wall time); returns `finish(abandon)`, which waits for its
    answer (with `abandon`, after telling it to stop: Ctrl-C should not wait for a scan). Inline,
    first, under an address-space limit, where a thread that cannot start ends the process in C++."""
    result = {}
    stop = threading.Event()

    def run() -> None:
        try:
            result["value"] = function(source, stop)
        except Exception:  # noqa: BLE001 - an unreadable file: the careful path says what is wrong with it
            pass

    if _address_space_limited():
        run()
        thread = None
    else:
        thread = threading.Thread(target=run)  # not a daemon: the interpreter waits for it before tearing down
        thread.start()

    def finish(abandon: bool = False) -> bool:
        if abandon:
            stop.set()
        if thread is not None:
            thread.join()
        return result.get("value", True)  # a failed scan vouches for nothing

    return finish


def _address_space_limited() -> bool:
    return resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY


def _config() -> dict:
    # Under an address-space limit a thread that cannot start ends the process: one thread then.
    threads = (
        1
        if _address_space_limited()
        else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )
    return {
        "threads": threads,
        "memory_limit": "256MB",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
