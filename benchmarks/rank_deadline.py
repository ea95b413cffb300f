"""The cost of training.rank_timeout's watchdog: a collective with the deadline armed against one without, same run.

Two ranks on this machine (MLX's ring backend over 127.0.0.1, started as `rfai train --nproc`
starts them) each make --calls small all-reduces (`World.sum_floats`, the kind a step makes
several of) through a World with a Deadline and through one without, in alternating blocks so
both see the same machine. Prints the median time per collective of each and the difference,
which is what every collective of a step pays for the deadline.

    .venv/bin/python benchmarks/rank_deadline.py [--calls 4000] [--block 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rfai_cli.engine  # noqa: F401  (OpenBLAS first, as in a rank)


def rank_main(calls: int, block: int) -> None:
    from rfai_cli.train.distributed import Deadline, World, init_world

    world = init_world()  # no deadline: the bare collective
    armed = World(world.group, world.rank, world.size, Deadline(1800, world.rank))
    times: dict[str, list[float]] = {"without": [], "with": []}
    for round_ in range(calls // block // 2):
        for name, each in (
            (("without", world), ("with", armed)) if round_ % 2 == 0 else (("with", armed), ("without", world))
        ):
            started = time.perf_counter()
            for _ in range(block):
                each.sum_floats(1.0)
            times[name].append((time.perf_counter() - started) / block)
    if world.is_main:
        print(json.dumps({name: statistics.median(values) for name, values in times.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        rank_main(args.calls, args.block)
        return
    from rfai_cli.train.launch import free_ports

    with tempfile.TemporaryDirectory() as scratch:
        hostfile = Path(scratch) / "hosts.json"
        hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"] for port in free_ports(2)]))
        command = [sys.executable, __file__, "--rank", "--calls", str(args.calls), "--block", str(args.block)]
        ranks = [
            subprocess.Popen(
                command,
                env={**os.environ, "MLX_HOSTFILE": str(hostfile), "MLX_RANK": str(rank)},
                stdout=subprocess.PIPE,
                text=True,
            )
            for rank in range(2)
        ]
        out = [rank.communicate()[0] for rank in ranks]
    figures = json.loads(out[0].strip().splitlines()[-1])
    without, with_ = figures["without"] * 1e6, figures["with"] * 1e6
    print(f"2 ranks, {args.calls} all-reduces of one float each, medians of blocks of {args.block}")
    print(f"  without the deadline {without:.1f} us a collective, with it {with_:.1f} us")
    print(f"  the deadline costs {with_ - without:+.2f} us a collective ({with_ / without:.3f}x)")


if __name__ == "__main__":
    main()
