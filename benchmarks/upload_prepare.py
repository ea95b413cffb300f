"""What `rfai upload` costs on this machine before anything is sent: checking rows and writing Parquet.

Baseline: one plain pass of `records.read_rows` over the same file (parse and type-check every
line), which any reader of the split pays. The secret scan (the detector `filter --drop-secrets` uses) is also timed
alone, since it is most of the check. Printed: medians of several runs, MB/s, and each step
as a ratio of the baseline measured in the same run.

    .venv/bin/python benchmarks/upload_prepare.py [MB]
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rfai_cli.data.parquet import write_shards  # noqa: E402
from rfai_cli.data.splitcheck import check_split  # noqa: E402
from rfai_cli.records import read_rows  # noqa: E402
from rfai_cli.secrets import scan_value  # noqa: E402

RUNS = 5


def make_file(path: Path, megabytes: float) -> None:
    rng = random.Random(0)
    words = ["values", "total", "index", "result", "item", "count", "left", "right", "node", "cache"]
    with open(path, "w", encoding="utf-8") as f:
        i = 0
        while f.tell() < megabytes * 1e6:
            # Varied code, so Parquet's compression is not flattered by identical rows.
            code = "".join(
                f"    {rng.choice(words)}_{rng.randrange(1000)} = {rng.choice(words)} + {rng.randrange(99)}\n"
                for _ in range(12)
            )
            row = {
                "prompt": f"Task {i}: implement solve() for a list of integers",
                "language": "python",
                "student_code": f"def solve(values):\n{code}    return values\n",
                "teacher_code": f'def solve(values):\n    """Reference."""\n{code}    return values\n',
                "student_score": 0.85,
                "teacher_score": 0.92,
                "reward": 0.924,
                "scoring_breakdown": {"correctness": 0.3, "code_quality": 0.3, "efficiency": 0.2, "documentation": 0.2},
                "score_sources": {"correctness": "tests", "code_quality": "static"},
                "timestamp": "2024-01-15T10:30:00+00:00",
                "split": "train",
                "step": i,
                "schema_version": 1,
            }
            f.write(json.dumps(row) + "\n")
            i += 1


def median_seconds(step) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        make_file(path, megabytes)
        size = path.stat().st_size / 1e6
        check = check_split("train", path)
        steps = {
            "read_rows (baseline)": lambda: sum(1 for _ in read_rows(path)),
            "check_split (rows, schema, secrets)": lambda: check_split("train", path),
            "  of which the secret scan": lambda: sum(1 for row in read_rows(path) for _ in scan_value(row)),
            "write_shards (Parquet, 1 shard)": lambda: write_shards(check, check.schema, Path(tmp) / "out", 10**12),
        }
        results = {name: median_seconds(step) for name, step in steps.items()}
        parquet = sum(p.stat().st_size for p in (Path(tmp) / "out").rglob("*.parquet")) / 1e6
    base = results["read_rows (baseline)"]
    print(f"{size:.1f} MB of JSONL, {check.rows:,} rows; medians of {RUNS} runs")
    for name, seconds in results.items():
        print(f"  {name:38s} {seconds:7.3f} s  {size / seconds:6.1f} MB/s  {seconds / base:4.2f}x baseline")
    print(f"  Parquet size: {parquet:.1f} MB ({parquet / size:.2f}x the JSONL)")


if __name__ == "__main__":
    main()
