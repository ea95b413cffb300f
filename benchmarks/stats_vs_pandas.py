"""`rfai stats --json` against the seed guide's pandas recipe on the same seed-shaped file.

Both run as separate processes (the CLI exactly as a user runs it, start-up included), so each
one's peak memory is its own maximum resident set size. Prints medians of --runs runs, the
speed ratio and the memory ratio.

    .venv/bin/python benchmarks/stats_vs_pandas.py            # 1,000,000 rows, 3 runs
    .venv/bin/python benchmarks/stats_vs_pandas.py --rows 100000 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_rows import write_rows  # noqa: E402

PANDAS_RECIPE = """
import sys
import pandas as pd

df = pd.read_json(sys.argv[1], lines=True)
print(f"Total examples: {len(df)}")
print(df[["student_score", "teacher_score", "reward"]].describe())
print(df.groupby("language").agg({"student_score": "mean", "teacher_score": "mean", "reward": "mean"}))
"""


def measure(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak resident memory in bytes) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{child.stderr.read().decode()}")
    child.stderr.close()
    return elapsed, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = write_rows(Path(tmp) / "train.jsonl", args.rows)
        size_mb = data.stat().st_size / 1e6
        rfai = [sys.executable, "-m", "rfai_cli", "stats", "--json", str(data)]
        pandas = [sys.executable, "-c", PANDAS_RECIPE, str(data)]
        ours, theirs = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            ours.append(measure(rfai))
            theirs.append(measure(pandas))

    ours_s = statistics.median(t for t, _ in ours)
    theirs_s = statistics.median(t for t, _ in theirs)
    ours_mb = statistics.median(m for _, m in ours) / 2**20
    theirs_mb = statistics.median(m for _, m in theirs) / 2**20
    print(f"{args.rows:,} seed-shaped rows, {size_mb:,.0f} MB, median of {args.runs} runs")
    print(f"rfai stats --json : {ours_s:7.2f} s  peak {ours_mb:7.0f} MiB  ({args.rows / ours_s:,.0f} rows/s)")
    print(f"pandas recipe     : {theirs_s:7.2f} s  peak {theirs_mb:7.0f} MiB")
    print(f"speed: rfai is {theirs_s / ours_s:.1f}x faster; memory: {ours_mb / theirs_mb:.3f} of pandas' peak")


if __name__ == "__main__":
    main()
