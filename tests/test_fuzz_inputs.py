"""A few hundred generated broken inputs through every reading command, under time and memory limits.

Each input (truncated, binary, huge, deep, wrong-typed, badly encoded) is given to stats, filter,
score or card in a real `rfai` process of its own, which must end with no
traceback, within its time limit and address-space limit, and leave no partial file behind.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess

import pytest
from conftest import RFAI

GOOD = {
    "prompt": "p",
    "language": "python",
    "student_code": "def f():\n    return 1\n",
    "student_score": 0.5,
    "teacher_score": 0.9,
    "reward": 0.556,
    "task_id": "t",
    "tests": ["assert f() == 1"],
}
MEMORY_LIMIT = 6 << 30  # address space: MLX and pyarrow reserve a lot of it up front


def broken_inputs(count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    good = (json.dumps(GOOD) + "\n").encode()
    makers = [
        lambda: good * rng.randint(1, 5) + good[: rng.randint(1, len(good) - 1)],  # torn last line
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))),  # binary
        lambda: b"[" * rng.randint(1, 200_000) + b"\n",  # deep JSON
        lambda: (b'{"a":' * rng.randint(100, 5000)) + b"1" + b"}" * 5000 + b"\n",
        lambda: (
            json.dumps({**GOOD, rng.choice(list(GOOD)): rng.choice([[], {}, 1, "x", None, True, 1e308, -1])}).encode()
            + b"\n"
        ),
        lambda: (
            json.dumps(GOOD).replace("0.5", rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "6e16"])).encode()
            + b"\n"
        ),
        lambda: (json.dumps(GOOD) + "\n").encode(rng.choice(["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])),
        lambda: b"\n" * rng.randint(1, 100) + good,  # blank lines
        lambda: b'{"prompt": "' + b"x" * rng.randint(1 << 20, 3 << 20) + b'"}\n',  # a long line
        lambda: good.replace(b"def f", "d\u00e9f \udcff".encode("utf-8", "surrogatepass")),  # invalid UTF-8
        lambda: json.dumps({**GOOD, "tests": [rng.choice(["", "assert", "(" * 500, "x" * 10_000])]}).encode() + b"\n",
        lambda: json.dumps({**GOOD, "student_code": "(" * 3000 + ")" * 3000}).encode() + b"\n",  # deep program
        lambda: json.dumps([GOOD]).encode() + b"\n" + b"{}" * 100 + b"\n",  # not an object, two objects
        lambda: b"",
    ]
    return [rng.choice(makers)() for _ in range(count)]


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, count, seed", [("stats", 90, 1), ("filter", 90, 2), ("score", 50, 3), ("card", 70, 4)]
)
def test_broken_inputs_never_crash_hang_or_leave_partial_files(tmp_path, command, count, seed):
    inputs = broken_inputs(count, seed)
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for index, data in enumerate(inputs):
        path = folder / f"{index:03d}.jsonl"
        path.write_bytes(data)
        paths.append(path)
    for index, path in enumerate(paths):
        if command == "card":
            target = tmp_path / "card" / path.stem
            target.mkdir(parents=True)
            (target / "train.jsonl").write_bytes(path.read_bytes())
            args = [command, str(target)]
        elif command == "stats":
            args = [command, str(path), "--json"]
        else:
            args = [command, str(path), "-o", str(tmp_path / f"{path.stem}.out")]
            if command == "score":
                args += ["--timeout", "2"]
        result = subprocess.run(
            [*RFAI, *args], capture_output=True, text=True, timeout=120, preexec_fn=limited, cwd=tmp_path
        )
        assert "Traceback" not in result.stderr, (path.name, inputs[index][:200], result.stderr[-2000:])
        assert result.returncode in (0, 1, 2), (path.name, result.returncode, result.stderr[-500:])
        if result.returncode:
            assert result.stderr.strip().splitlines()[-1].startswith("error:"), result.stderr
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith((".rfai-tmp", ".README"))]
    assert leftovers == []
