"""The starter curriculum with the function's name taken out of every prompt, for docs/scoring.md.

Each prompt loses its signature ("`add_numbers(a: int, b: int) -> int`") and its examples (which
call the function by name); the tests and the reference solution keep the name, as tests a
teacher writes for an open-ended prompt do. Prompts that still say the name are left out.

    .venv/bin/python benchmarks/unnamed_prompts.py unnamed.jsonl
    printf 'teacher:\n  provider: reference\n' > config.yaml
    rfai collect --prompts unnamed.jsonl --samples 4 -d out && rfai stats out
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rfai_cli.data.prompts import STARTER, load_prompts


def unnamed(prompt: str, name: str) -> str:
    prompt = re.sub(rf"`{re.escape(name)}\([^`]*`\s*", "", prompt)
    return re.sub(r"\s*For example.*$", "", prompt, flags=re.S)


def main() -> None:
    out = Path(sys.argv[1])
    kept = []
    for task in load_prompts(STARTER):
        prompt = unnamed(task.prompt, task.entry_point)
        if re.search(rf"(?<!\w){re.escape(task.entry_point)}(?!\w)", prompt):
            continue
        kept.append(
            {
                "task_id": task.task_id,
                "language": task.language,
                "prompt": prompt,
                "tests": task.tests,
                "canonical_solution": task.canonical_solution,
                "split": "train",
            }
        )
    out.write_text("".join(json.dumps(row) + "\n" for row in kept))
    print(f"{len(kept)} prompts without the function's name: {out}")


if __name__ == "__main__":
    main()
