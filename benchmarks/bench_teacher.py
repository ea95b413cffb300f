"""Teacher throughput: concurrent requests and the disk cache, against a local Messages API server.

The server (tests/support/messages_server.py) takes a fixed time per request, like a remote model would.
Baseline: max_concurrency 1 (one request at a time), measured in the same run. Prints medians of
several runs and the ratios.

    .venv/bin/python benchmarks/bench_teacher.py [--requests 32] [--latency 0.05] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.messages_server import MessagesServer  # noqa: E402

from rfai_cli.config import load_config  # noqa: E402
from rfai_cli.teachers import build_teacher  # noqa: E402


def timed_references(server: MessagesServer, cache_dir: str, concurrency: int, tasks) -> float:
    config = load_config(
        None,
        {
            "teacher.provider": "anthropic",
            "teacher.model_name": "bench",
            "teacher.base_url": server.url,
            "teacher.api_key_env": "RFAI_BENCH_KEY",
            "teacher.cache_dir": cache_dir,
            "teacher.max_concurrency": concurrency,
        },
    )
    with build_teacher(config) as teacher:
        started = time.perf_counter()
        answers = teacher.references(tasks)
        elapsed = time.perf_counter() - started
    assert all(a.ok for a in answers)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["RFAI_BENCH_KEY"] = "bench"
    server = MessagesServer(delay=args.latency)
    results: dict[str, list[float]] = {"sequential": [], "concurrent": [], "cached rerun": []}
    try:
        for run in range(args.runs):
            tasks = [(f"run {run} task {i}", "python") for i in range(args.requests)]
            with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
                results["sequential"].append(timed_references(server, one, 1, tasks))
                results["concurrent"].append(timed_references(server, many, args.concurrency, tasks))
                before = server.count
                results["cached rerun"].append(timed_references(server, many, args.concurrency, tasks))
                assert server.count == before, "the rerun made teacher calls"
    finally:
        server.close()
    base = statistics.median(results["sequential"])
    print(f"{args.requests} references, {args.latency * 1000:.0f} ms per request, median of {args.runs} runs")
    for name, times in results.items():
        median = statistics.median(times)
        label = name if name != "concurrent" else f"concurrent ({args.concurrency})"
        print(f"  {label:<16} {median * 1000:8.1f} ms   {base / median:7.1f}x vs sequential")


if __name__ == "__main__":
    main()
