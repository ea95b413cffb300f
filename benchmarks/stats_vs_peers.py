"""`rfai stats --json` and `rfai filter` against DuckDB, polars and pandas on the same seed-shaped file.

Every tool runs as its own process (start-up included), so each peak memory is that process's
maximum resident set size. Runs are interleaved, medians of --runs. The peers compute the same
figures (count, mean, std, min, p10, median, p90, max of the three scores, overall and by
language) and keep the same rows (reward >= 0.9), as a user of each would write it.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/stats_vs_peers.py                  # 1,000,000 rows, 3 runs
    .venv/bin/python benchmarks/stats_vs_peers.py --rows 10000000 --runs 1 --only rfai duckdb
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_rows import write_rows  # noqa: E402
from stats_vs_pandas import PANDAS_RECIPE, measure  # noqa: E402

SCORES = ("student_score", "teacher_score", "reward")
_FIGURES = ", ".join(
    f"count({c}), avg({c}), stddev_samp({c}), min({c}), quantile_cont({c}, [0.1, 0.5, 0.9]), max({c})" for c in SCORES
)
DUCKDB_STATS = f"""
import sys, duckdb
duckdb.sql(f"SELECT language, {_FIGURES} FROM read_json('{{sys.argv[1]}}') GROUP BY GROUPING SETS ((), (language))").fetchall()
"""
DUCKDB_FILTER = """
import sys, duckdb
duckdb.sql(f"COPY (SELECT * FROM read_json('{sys.argv[1]}') WHERE reward >= 0.9) TO '{sys.argv[2]}' (FORMAT json)")
"""
POLARS_STATS = """
import sys, polars as pl
df = pl.read_ndjson(sys.argv[1], schema_overrides=None)
aggs = []
for c in ("student_score", "teacher_score", "reward"):
    aggs += [pl.col(c).count().alias(c + "_n"), pl.col(c).mean().alias(c + "_mean"), pl.col(c).std().alias(c + "_std"),
             pl.col(c).min().alias(c + "_min"), pl.col(c).max().alias(c + "_max")]
    aggs += [pl.col(c).quantile(q, "linear").alias(f"{c}_q{q}") for q in (0.1, 0.5, 0.9)]
df.select(aggs); df.group_by("language").agg(aggs)
"""
POLARS_FILTER = """
import sys, polars as pl
pl.scan_ndjson(sys.argv[1]).filter(pl.col("reward") >= 0.9).sink_ndjson(sys.argv[2])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["rfai", "duckdb", "polars", "pandas"])
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = write_rows(Path(tmp) / "train.jsonl", args.rows)
        out = str(Path(tmp) / "out.jsonl")
        jobs = {
            "stats": {
                "rfai": [python, "-m", "rfai_cli", "stats", "--json", str(data)],
                "duckdb": [python, "-c", DUCKDB_STATS, str(data)],
                "polars": [python, "-c", POLARS_STATS, str(data)],
                "pandas": [python, "-c", PANDAS_RECIPE, str(data)],
            },
            "filter": {
                "rfai": [python, "-m", "rfai_cli", "filter", str(data), "--min-reward", "0.9", "-q", "-o", out],
                "duckdb": [python, "-c", DUCKDB_FILTER, str(data), out],
                "polars": [python, "-c", POLARS_FILTER, str(data), out],
            },
        }
        print(f"{args.rows:,} seed-shaped rows, {data.stat().st_size / 1e6:,.0f} MB, median of {args.runs} runs")
        for job, tools in jobs.items():
            tools = {name: command for name, command in tools.items() if name in args.only}
            runs: dict[str, list[tuple[float, int]]] = {name: [] for name in tools}
            for _ in range(args.runs):  # interleaved, so all see the same machine load
                for name, command in tools.items():
                    Path(out).unlink(missing_ok=True)  # each writes a new file: none pays for replacing another's
                    runs[name].append(measure(command))
            medians = {
                name: (statistics.median(t for t, _ in got), statistics.median(m for _, m in got) / 2**20)
                for name, got in runs.items()
            }
            for name, (seconds, peak) in medians.items():
                ratio = ""
                if name != "rfai" and "rfai" in medians:
                    ratio = f"  rfai takes {medians['rfai'][0] / seconds:.2f}x its time"
                print(f"{job:6} {name:7} {seconds:7.2f} s  peak {peak:6.0f} MiB{ratio}")


if __name__ == "__main__":
    main()
