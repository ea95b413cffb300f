"""Seed-shaped dataset rows for the benchmarks: the seed guide's fields, realistic sizes, deterministic."""

from __future__ import annotations

import json
import random
from pathlib import Path

LANGUAGES = ("python", "javascript", "cpp", "rust", "go")
WEIGHTS = {"correctness": 0.3, "code_quality": 0.3, "efficiency": 0.2, "documentation": 0.2}
_CODE = {
    "python": 'def {name}(arr, target):\n    """Return the index of target in arr, or -1."""\n    lo, hi = 0, len(arr) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n        if arr[mid] == target:\n            return mid\n        if arr[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n    return -{k}\n',
    "javascript": "function {name}(arr, target) {{\n  let lo = 0, hi = arr.length - 1;\n  while (lo <= hi) {{\n    const mid = (lo + hi) >> 1;\n    if (arr[mid] === target) return mid;\n    if (arr[mid] < target) lo = mid + 1; else hi = mid - 1;\n  }}\n  return -{k};\n}}\n",
    "cpp": "int {name}(const std::vector<int>& a, int t) {{\n    int lo = 0, hi = (int)a.size() - 1;\n    while (lo <= hi) {{\n        int mid = lo + (hi - lo) / 2;\n        if (a[mid] == t) return mid;\n        if (a[mid] < t) lo = mid + 1; else hi = mid - 1;\n    }}\n    return -{k};\n}}\n",
    "rust": "fn {name}(a: &[i32], t: i32) -> i64 {{\n    let (mut lo, mut hi) = (0i64, a.len() as i64 - 1);\n    while lo <= hi {{\n        let mid = (lo + hi) / 2;\n        if a[mid as usize] == t {{ return mid; }}\n        if a[mid as usize] < t {{ lo = mid + 1; }} else {{ hi = mid - 1; }}\n    }}\n    -{k}\n}}\n",
    "go": "func {name}(a []int, t int) int {{\n\tlo, hi := 0, len(a)-1\n\tfor lo <= hi {{\n\t\tmid := (lo + hi) / 2\n\t\tif a[mid] == t {{\n\t\t\treturn mid\n\t\t}}\n\t\tif a[mid] < t {{\n\t\t\tlo = mid + 1\n\t\t}} else {{\n\t\t\thi = mid - 1\n\t\t}}\n\t}}\n\treturn -{k}\n}}\n",
}


def write_rows(path: Path, rows: int, seed: int = 0, distinct: bool = False) -> Path:
    """Write `rows` seed-shaped JSONL rows to `path` (about 900 bytes each) and return it. With
    `distinct`, every row's student code is its own (the worst case for --dedupe)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(rows):
            language = LANGUAGES[i % len(LANGUAGES)]
            student = round(rng.random(), 4)
            teacher = round(0.5 + rng.random() / 2, 4)
            row = {
                "prompt": f"Implement a binary search function (variant {i % 997})",
                "language": language,
                "student_code": _CODE[language].format(name=f"search_{i if distinct else i % 389}", k=i % 7 + 1),
                "teacher_code": _CODE[language].format(name=f"binary_search_{i % 13}", k=1),
                "student_score": student,
                "teacher_score": teacher,
                "reward": round(min(2.0, student / max(teacher, 0.05)), 4),
                "scoring_breakdown": WEIGHTS,
                "timestamp": f"2024-01-15T10:{i // 60 % 60:02d}:{i % 60:02d}",
            }
            out.write(json.dumps(row) + "\n")
    return path
