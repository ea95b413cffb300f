"""Where `rfai stats`' time goes on its fast path, step by step, against DuckDB's own query.

Each step adds one part of what the fast path checks to the query before it, and reads the
result to the end through the same Arrow reader (in this process, 2 DuckDB threads, no start-up):
the scores and labels, the test counts, the type check of every known field, the duplicate-key
checks, the byte scan, and finally the counting (`compute_stats`). Medians of --runs.

    .venv/bin/python benchmarks/stats_breakdown.py                # 1,000,000 seed-shaped rows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_rows import write_rows  # noqa: E402
from stats_vs_peers import _FIGURES  # noqa: E402

from rfai_cli.data import columnar  # noqa: E402
from rfai_cli.data import stats as stats_module  # noqa: E402
from rfai_cli.records import FIELD_TYPES  # noqa: E402


def _columns() -> tuple[dict[str, str], dict[str, str]]:
    """stats' columns as `_columnar_pass` asks for them: (scores and labels, test counts)."""
    s = stats_module
    columns = {name: columnar.score_column(name) for name in s.SCORE_FIELDS}
    labels = list(dict.fromkeys([*s.DEFAULT_BY, s.TASK, s.SAMPLE_SOURCE]))
    columns.update({f"label {name}": columnar.label_expression(name) for name in labels})
    columns.update({f"label {label}": columnar.student_source_column(key) for label, key in s.STUDENT_SOURCES.items()})
    return columns, columnar.pass_count_columns()


def _query(source: Path, columns: dict[str, str], checks: list[str]) -> str:
    declared = ", ".join(f"'{name}': 'JSON'" for name in FIELD_TYPES)
    select = ", ".join(f'{expression} AS "{alias}"' for alias, expression in columns.items())
    doubt = f", NOT ({' AND '.join(checks)}) AS doubt" if checks else ""
    return f"SELECT {select}{doubt} FROM read_json('{source}', format='newline_delimited', columns={{{declared}}})"


def _read(connection, query: str) -> None:
    for _ in connection.sql(query).to_arrow_reader(columnar.BATCH_ROWS):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = write_rows(Path(tmp) / "train.jsonl", args.rows)
        megabytes = source.stat().st_size / 1e6
        connection = duckdb.connect(config=columnar._config())
        scores_and_labels, test_counts = _columns()
        both = {**scores_and_labels, **test_counts}
        types = [columnar._field_ok(columnar._ident(name), columnar._kind(t)) for name, t in FIELD_TYPES.items()]
        full = columnar.build_query(source, both, stats_module.DEFAULT_BY)
        steps = {
            "DuckDB's own query (the peer of stats_vs_peers.py)": lambda: connection.sql(
                f"SELECT language, {_FIGURES} FROM read_json('{source}') GROUP BY GROUPING SETS ((), (language))"
            ).fetchall(),
            "rfai: the three scores and the group labels": lambda: _read(
                connection, _query(source, scores_and_labels, [])
            ),
            "+ the four test counts": lambda: _read(connection, _query(source, both, [])),
            "+ the type check of every known field": lambda: _read(connection, _query(source, both, types)),
            "+ no duplicate keys in nested objects (the whole query)": lambda: _read(connection, full),
            "+ the byte scan, in a thread": lambda: _drain(
                columnar.read_batches(source, both, stats_module.DEFAULT_BY)
            ),
            "+ the counting (compute_stats)": lambda: stats_module.compute_stats([source]),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
        for _ in range(args.runs):
            for name, step in steps.items():
                wall, cpu = time.perf_counter(), time.process_time()
                step()
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"{args.rows:,} seed-shaped rows, {megabytes:,.0f} MB, median of {args.runs} runs")
    peer = None
    for name, runs in times.items():
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        peer = peer or wall
        print(f"{name:58s} wall {wall:5.2f} s  CPU {cpu:5.2f} s  {wall / peer:4.2f}x DuckDB's query")


def _drain(batches) -> None:
    with closing(batches):
        for _ in batches:
            pass


if __name__ == "__main__":
    main()
