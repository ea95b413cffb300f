"""`rfai filter` throughput and peak memory on seed-shaped files of two sizes.

Peak memory that does not grow with the file size is what "constant memory" means here.

    .venv/bin/python benchmarks/filter_throughput.py                 # 100 MB and 1 GB, 3 runs each
    .venv/bin/python benchmarks/filter_throughput.py --sizes-mb 50 200 --runs 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_rows import write_rows  # noqa: E402
from stats_vs_pandas import measure  # noqa: E402

ROW_BYTES = 906  # the average size of a seed_rows row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes_mb:
            rows = size * 1_000_000 // ROW_BYTES
            data = write_rows(Path(tmp) / "train.jsonl", rows)
            command = [
                sys.executable,
                "-m",
                "rfai_cli",
                "filter",
                str(data),
                "--min-reward",
                "0.9",
                "--drop-secrets",
                "-q",
                "-o",
                str(Path(tmp) / "kept.jsonl"),
            ]
            runs = [measure(command) for _ in range(args.runs)]
            seconds = statistics.median(t for t, _ in runs)
            peak = statistics.median(m for _, m in runs) / 2**20
            print(
                f"{data.stat().st_size / 1e6:6.0f} MB, {rows:>9,} rows: {seconds:6.1f} s, "
                f"{rows / seconds:>8,.0f} rows/s, {data.stat().st_size / 1e6 / seconds:5.1f} MB/s, peak {peak:4.0f} MiB "
                f"(--min-reward 0.9 --drop-secrets, median of {args.runs})"
            )


if __name__ == "__main__":
    main()
