"""The reward ranks answers as a reviewer would, on real built-in tasks in python, C++ and Rust.

empty, stub, prose < wrong < partly right < right <= right with docs; an answer that fails every
test scores 0; more tests passed is never worse. These go through the real sandbox and compilers.
"""

from __future__ import annotations

import shutil

import pytest

from rfai_cli.config import ScoringSettings
from rfai_cli.data.prompts import load_prompts
from rfai_cli.scoring import ScoreItem, Scorer

ORDER = ("empty", "stub", "prose", "wrong", "partly right", "right", "right with docs")

ANSWERS = {
    "rfai/py/020": {  # digital_root, 6 cases
        "empty": "",
        "stub": 'def digital_root(n: int) -> int:\n    """Sum the digits until one is left."""\n    pass\n',
        "prose": '# Sums the digits of n until one digit is left.\nprint("ok")\n',
        "wrong": 'def digital_root(n: int) -> int:\n    """The last digit."""\n    return n % 10\n',
        "partly right": "def digital_root(n: int) -> int:\n    for _ in range(2):  # two rounds are not always enough\n"
        "        n = n if n < 10 else sum(int(d) for d in str(n))\n    return n\n",
        "right": "def digital_root(n):\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n    return n\n",
        "right with docs": None,  # the task's reference solution
    },
    "rfai/cpp/009": {  # max_nesting, 6 cases
        "empty": "",
        "stub": "#include <string>\n// Nesting depth.\nint max_nesting(const std::string& text) { return -2; }\n",
        "prose": "// Counts the parentheses and reports the deepest nesting.\n",
        "wrong": "#include <algorithm>\n#include <string>\n"
        "int max_nesting(const std::string& text) {\n"
        "    return static_cast<int>(std::count(text.begin(), text.end(), '('));\n}\n",
        "partly right": "#include <algorithm>\n#include <string>\n"
        "int max_nesting(const std::string& text) {\n    int depth = 0, deepest = 0;\n"
        "    for (char c : text) {\n        if (c == '(') deepest = std::max(deepest, ++depth);\n"
        "        else if (c == ')' && --depth < 0) return -1;\n    }\n    return deepest;\n}\n",
        "right": "#include <algorithm>\n#include <string>\n"
        "int max_nesting(const std::string& text) {\n    int depth = 0, deepest = 0;\n"
        "    for (char c : text) {\n        if (c == '(') deepest = std::max(deepest, ++depth);\n"
        "        else if (c == ')' && --depth < 0) return -1;\n    }\n"
        "    return depth == 0 ? deepest : -1;\n}\n",
        "right with docs": None,
    },
    "rfai/rs/005": {  # transpose, 5 cases
        "empty": "",
        "stub": "/// Transpose.\npub fn transpose(matrix: &[Vec<i32>]) -> Vec<Vec<i32>> {\n    unimplemented!()\n}\n",
        "prose": '// Turns rows into columns.\nfn main() {\n    println!("ok");\n}\n',
        "wrong": "pub fn transpose(matrix: &[Vec<i32>]) -> Vec<Vec<i32>> {\n    matrix.to_vec()\n}\n",
        "partly right": "pub fn transpose(matrix: &[Vec<i32>]) -> Vec<Vec<i32>> {\n"
        "    if matrix.is_empty() {\n        return Vec::new();\n    }\n"
        "    let columns = matrix[0].len().max(1);\n"
        "    (0..columns).map(|c| matrix.iter().map(|row| row[c]).collect()).collect()\n}\n",
        "right": "pub fn transpose(matrix: &[Vec<i32>]) -> Vec<Vec<i32>> {\n"
        "    let columns = matrix.first().map_or(0, |row| row.len());\n"
        "    (0..columns).map(|c| matrix.iter().map(|row| row[c]).collect()).collect()\n}\n",
        "right with docs": None,
    },
}
NEEDS = {"rfai/cpp/009": "g++", "rfai/rs/005": "rustc"}


@pytest.fixture(scope="module")
def scorer():
    with Scorer(ScoringSettings(workers=2)) as scorer:
        yield scorer


@pytest.mark.parametrize("task_id", list(ANSWERS))
def test_rewards_rank_answers_as_a_reviewer_would(scorer, task_id):
    if task_id in NEEDS and shutil.which(NEEDS[task_id]) is None:
        pytest.fail(f"{NEEDS[task_id]} is needed for this test (CI installs it)")
    task = next(t for t in load_prompts("builtin") if t.task_id == task_id)
    answers = [task.canonical_solution if ANSWERS[task_id][name] is None else ANSWERS[task_id][name] for name in ORDER]
    row = {"prompt": task.prompt, "language": task.language, "tests": task.tests, "entry_point": task.entry_point}
    result = scorer.score(ScoreItem(row, answers, task.canonical_solution))
    scored = dict(zip(ORDER, zip(result.students, result.rewards)))
    passed = {name: score.tests["passed"] for name, (score, _) in scored.items()}
    assert result.teacher.score == 1.0 and result.teacher.tests["passed"] == len(task.tests)

    for name in ("empty", "stub", "prose"):
        score, reward = scored[name]
        assert passed[name] == 0, (name, score.tests)
        assert score.score == 0.0 and reward == 0.0 and set(score.breakdown.values()) == {0.0}, name
    assert 0 < passed["wrong"] < passed["partly right"] < passed["right"] == len(task.tests), passed
    scores = [scored[name][0].score for name in ORDER]
    assert scores[3] < scores[4] < scores[5] <= scores[6], dict(zip(ORDER, scores))
    assert scored["right with docs"][0].score == 1.0 and scored["right with docs"][1] == 1.0
    for a in ORDER:  # more tests passed is never worse, whatever the rest of the rubric says
        for b in ORDER:
            if passed[a] > passed[b]:
                assert scored[a][0].score > scored[b][0].score, (a, b)
