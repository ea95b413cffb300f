"""Peak memory (and time) of `rfai stats` and `rfai filter` at 1M and 10M seed-shaped rows: it must not grow with the file.

The --dedupe file gives every row its own student code (the worst case: one sample per row).
One run per size (10M rows is a 9 GB file); a tenfold file should show the same peak.

    .venv/bin/python benchmarks/data_memory.py                      # 1,000,000 and 10,000,000 rows
    .venv/bin/python benchmarks/data_memory.py --rows 100000 1000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_rows import write_rows  # noqa: E402
from stats_vs_pandas import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    rfai = [sys.executable, "-m", "rfai_cli"]
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            data = write_rows(Path(tmp) / "train.jsonl", rows, distinct=True)
            out = Path(tmp) / "out.jsonl"
            jobs = {
                "stats --json": [*rfai, "stats", "--json", str(data)],
                "filter --min-reward 0.9": [*rfai, "filter", str(data), "--min-reward", "0.9", "-q", "-o", str(out)],
                "filter --top-k 100000": [*rfai, "filter", str(data), "--top-k", "100000", "-q", "-o", str(out)],
                "filter --dedupe": [*rfai, "filter", str(data), "--dedupe", "-q", "-o", str(out)],
            }
            for name, command in jobs.items():
                out.unlink(missing_ok=True)
                seconds, peak = measure(command)
                print(f"{rows:>11,} rows  {name:24} {seconds:8.1f} s  peak {peak / 2**20:5.0f} MiB", flush=True)
            data.unlink()


if __name__ == "__main__":
    main()
